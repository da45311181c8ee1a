//! Chat replies for the licence operations (issue 18): what will be done, and the results (scan summary,
//! SBOM counts, proof root and key, verification verdict, the disclosure draft) in German or English.

use std::fmt::Write;

use cacheos_core::license::SourceArgs;
use cacheos_core::{Operation, Output};

use crate::engine::Lang;

fn src(s: &SourceArgs, de: bool) -> String {
    let path = if s.path.is_empty() {
        String::new()
    } else {
        format!(" ({})", s.path)
    };
    match (&s.drive, &s.sandbox) {
        (Some(d), _) => format!("{} {d}{path}", if de { "Laufwerk" } else { "drive" }),
        (None, Some(b)) => format!("{} {b}{path}", "Sandbox"),
        _ => "?".into(),
    }
}

/// What the chat is about to do.
pub fn explain(op: &Operation, lang: Lang) -> String {
    let de = lang == Lang::De;
    match op {
        Operation::LicenseScan(a) => {
            let s = src(&a.source, de);
            if de {
                format!("Ich prüfe die Lizenzen auf {s} (license.scan).")
            } else {
                format!("Scanning the licences on {s} (license.scan).")
            }
        }
        Operation::LicenseCancel(a) => {
            if de {
                format!("Ich breche den Auftrag {} ab.", a.job)
            } else {
                format!("Cancelling job {}.", a.job)
            }
        }
        Operation::SbomCreate(a) | Operation::NoticeCreate(a) => {
            let what = if a.appliance {
                (if de { "der Appliance" } else { "the appliance" }).to_owned()
            } else {
                src(&a.source, de)
            };
            match (matches!(op, Operation::SbomCreate(_)), de) {
                (true, true) => format!("Ich erstelle eine SBOM (SPDX 2.3 und CycloneDX 1.5) von {what}."),
                (true, false) => format!("Making an SBOM (SPDX 2.3 and CycloneDX 1.5) of {what}."),
                (false, true) => format!("Ich erstelle die Drittanbieter-Hinweise für {what}."),
                (false, false) => format!("Making the third-party notice for {what}."),
            }
        }
        Operation::ProofCreate(s) => {
            let s = src(s, de);
            if de {
                format!("Ich erstelle einen signierten Existenznachweis für die Dateien auf {s} (proof.create).")
            } else {
                format!("Making a signed proof of existence of the files on {s} (proof.create).")
            }
        }
        Operation::ProofVerify(_) => {
            if de {
                "Ich prüfe den Nachweis (proof.verify).".into()
            } else {
                "Verifying the proof (proof.verify).".into()
            }
        }
        Operation::DisclosureDraft(a) => {
            if de {
                format!("Ich entwerfe eine Erfindungsmeldung „{}“ (disclosure.draft).", a.title)
            } else {
                format!("Drafting an invention disclosure \"{}\" (disclosure.draft).", a.title)
            }
        }
        _ => String::new(),
    }
}

/// The result, a few lines; `None` for outputs that are not licence results.
pub fn output(o: &Output, lang: Lang) -> Option<String> {
    let de = lang == Lang::De;
    let mut s = String::new();
    match o {
        Output::LicenseScan(r) => {
            let _ = writeln!(
                s,
                "{}: {} {}, {} {}.",
                r.source,
                r.files,
                if de { "Dateien" } else { "files" },
                r.findings.len(),
                if de {
                    "mit Lizenzangaben"
                } else {
                    "with licence information"
                }
            );
            for l in r.summary.licenses.iter().take(8) {
                let _ = writeln!(s, "  {}: {} {}", l.id, l.count, if de { "Dateien" } else { "files" });
            }
            if r.summary.without_info_count > 0 {
                let _ = writeln!(
                    s,
                    "{} {}",
                    r.summary.without_info_count,
                    if de {
                        "Dateien ohne Lizenzangabe."
                    } else {
                        "files without licence information."
                    }
                );
            }
            for d in &r.summary.disagreements {
                let dir = if d.directory.is_empty() {
                    "."
                } else {
                    d.directory.as_str()
                };
                let _ = writeln!(
                    s,
                    "{} {dir}: {} {} {}, {} {}",
                    if de { "Abweichung in" } else { "Disagreement in" },
                    d.manifest,
                    if de { "sagt" } else { "says" },
                    d.declared,
                    if de { "die Lizenzdateien:" } else { "the licence files:" },
                    d.detected.join(", ")
                );
            }
            for w in &r.warnings {
                let msg = match (w.rule.as_str(), de) {
                    ("copyleft-in-permissive", true) => {
                        "Hinweis: Dateien mit starkem Copyleft in einem permissiv lizenzierten Ganzen.".to_owned()
                    }
                    ("gpl2-apache2", true) => {
                        "Hinweis: GPL-2.0-only und Apache-2.0 gelten zusammen als unverträglich.".to_owned()
                    }
                    ("agpl-network", true) => {
                        "Hinweis: AGPL in einem Netzwerkdienst — Nutzern über das Netz den Quelltext anbieten."
                            .to_owned()
                    }
                    (_, _) => format!("Note: {}", w.message),
                };
                let _ = writeln!(s, "{msg}");
            }
            s.push_str(if de {
                "Automatische Erkennung, keine Rechtsberatung."
            } else {
                "Automatic detection, not legal advice."
            });
        }
        Output::Sbom(d) => {
            let counts: Vec<String> = d.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
            let _ = writeln!(
                s,
                "{} {}: {} ({}).",
                if de { "SBOM von" } else { "SBOM of" },
                d.source,
                d.components.len(),
                if counts.is_empty() {
                    "-".into()
                } else {
                    counts.join(", ")
                }
            );
            let _ = write!(
                s,
                "{} {}. {}",
                d.without_license,
                if de {
                    "ohne bekannte Lizenz"
                } else {
                    "without a known licence"
                },
                if de {
                    "SPDX 2.3 und CycloneDX 1.5 als JSON: cacheosctl sbom create --json oder POST /api/v1/sbom."
                } else {
                    "SPDX 2.3 and CycloneDX 1.5 JSON: cacheosctl sbom create --json or POST /api/v1/sbom."
                }
            );
        }
        Output::Notice(n) => {
            let l: Vec<String> = n.licenses.iter().map(|(k, v)| format!("{k} ({v})")).collect();
            let _ = write!(
                s,
                "{} {}: {}. {} {}.",
                if de {
                    "Drittanbieter-Hinweise für"
                } else {
                    "Third-party notice for"
                },
                n.source,
                l.join(", "),
                n.unknown.len(),
                if de {
                    "Komponenten ohne Lizenzangabe"
                } else {
                    "components without licence information"
                }
            );
        }
        Output::Proof(m) => {
            let _ = writeln!(
                s,
                "{} {} ({} {}, {}).",
                if de { "Nachweis für" } else { "Proof of" },
                m.source,
                m.files.len(),
                if de { "Dateien" } else { "files" },
                m.created
            );
            let _ = writeln!(s, "{}: {}", if de { "Merkle-Wurzel" } else { "Merkle root" }, m.root);
            let _ = writeln!(
                s,
                "{}: {}",
                if de { "Öffentlicher Schlüssel" } else { "Public key" },
                m.public_key
            );
            if !m.skipped.is_empty() {
                let _ = writeln!(
                    s,
                    "{} {}",
                    m.skipped.len(),
                    if de {
                        "Einträge übersprungen."
                    } else {
                        "entries skipped."
                    }
                );
            }
            s.push_str(if de {
                "Ohne Zeitstempeldienst belegt die Signatur der Appliance den Zeitpunkt."
            } else {
                "Without a time-stamp service, the appliance's signature attests the time."
            });
        }
        Output::ProofVerified(v) => {
            let verdict = match (v.intact, de) {
                (true, true) => "Der Nachweis stimmt: nichts verändert.",
                (true, false) => "The proof holds: nothing changed.",
                (false, true) => "Der Nachweis stimmt NICHT.",
                (false, false) => "The proof does NOT hold.",
            };
            let _ = writeln!(s, "{verdict} ({}, {})", v.source, v.created);
            let yn = |b: bool| match (b, de) {
                (true, true) => "ja",
                (false, true) => "nein",
                (true, false) => "yes",
                (false, false) => "no",
            };
            let _ = writeln!(
                s,
                "{}: {}, {}: {}, {}: {}, {}: {}",
                if de { "Wurzel" } else { "root" },
                yn(v.root_matches),
                if de { "Signatur" } else { "signature" },
                yn(v.signature_valid),
                if de { "unser Schlüssel" } else { "our key" },
                yn(v.key_is_ours),
                if de { "Zeitstempel" } else { "time stamp" },
                timestamp_verdict(&v.timestamp, de)
            );
            if !v.files_checked {
                s.push_str(if de {
                    "Die Dateien waren nicht lesbar (Laufwerk oder Sandbox nicht da) und wurden nicht verglichen.\n"
                } else {
                    "The files could not be read (drive or sandbox not there) and were not compared.\n"
                });
            }
            for c in v.changes.iter().take(10) {
                let what = match (c.change.as_str(), de) {
                    ("modified", true) => "geändert",
                    ("missing", true) => "fehlt",
                    ("added", true) => "neu",
                    (c, _) => c,
                };
                let _ = writeln!(s, "  {}: {what}", c.path);
            }
            if v.changes.len() > 10 {
                let _ = write!(
                    s,
                    "  … {} {}",
                    v.changes.len() - 10,
                    if de { "weitere" } else { "more" }
                );
            }
        }
        Output::Disclosure(d) => {
            s.push_str(&d.markdown);
        }
        _ => return None,
    }
    Some(s.trim_end().to_owned())
}

/// What to say next after a licence result.
pub fn next_step(op: &Operation, o: &Output, lang: Lang) -> Option<String> {
    let de = lang == Lang::De;
    match (op, o) {
        (Operation::ProofCreate(_), Output::Proof(_)) => Some(if de {
            "Weiter: „prüfe den Nachweis“ oder „entwirf eine Erfindungsmeldung über …“.".into()
        } else {
            "Next: \"verify the proof\" or \"draft an invention disclosure about …\".".into()
        }),
        _ => None,
    }
}

/// The time-stamp verdict of a verification (`none`, `imprint-matches`, `mismatch`, `malformed`) in words.
fn timestamp_verdict(code: &str, de: bool) -> &str {
    match (code, de) {
        ("none", true) => "keiner",
        ("none", false) => "none",
        ("imprint-matches", true) => "passt",
        ("imprint-matches", false) => "matches",
        ("mismatch", true) => "passt NICHT",
        ("mismatch", false) => "does NOT match",
        ("malformed", true) => "unlesbar",
        ("malformed", false) => "malformed",
        (other, _) => other,
    }
}
