//! The documents CacheOS drafts: a third-party notice (licence texts grouped by licence, texts from the SPDX list
//! the `spdx` crate carries) and an invention-disclosure / copyright-record draft in German or English.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::manifest;
use crate::sbom::Component;
use crate::util::{date, rfc3339};

/// A third-party notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notice {
    /// What it covers.
    pub source: String,
    /// Licences named, with how many components each.
    pub licenses: BTreeMap<String, u64>,
    /// Components with no known licence (named in the notice as such).
    pub unknown: Vec<String>,
    /// The notice as plain text (Markdown headings).
    pub text: String,
}

/// Builds the notice: one section per licence with the components under it and the licence's full text.
pub fn notice(source: &str, components: &[Component]) -> Notice {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for c in components {
        let label = match &c.version {
            Some(v) => format!("{} {v} ({})", c.name, c.ecosystem),
            None => format!("{} ({})", c.name, c.ecosystem),
        };
        let ids = c.license.as_deref().map(manifest::ids).unwrap_or_default();
        if ids.is_empty() {
            unknown.push(label);
        } else {
            for id in ids {
                by.entry(id).or_default().push(label.clone());
            }
        }
    }
    let mut t = format!(
        "# Third-party notices\n\nSoftware in {source} includes the following components. Where a component offers a choice of licences, it is listed under each.\n\n"
    );
    for (id, comps) in &by {
        let lic = spdx::license_id(id);
        t.push_str(&format!(
            "## {id}{}\n\n",
            lic.map(|l| format!(" — {}", l.full_name)).unwrap_or_default()
        ));
        for c in comps {
            t.push_str(&format!("- {c}\n"));
        }
        t.push('\n');
        match lic {
            Some(l) => {
                t.push_str("```text\n");
                t.push_str(l.text().trim_end());
                t.push_str("\n```\n\n");
            }
            None => t.push_str("(no SPDX list text for this identifier; see the component's own licence file)\n\n"),
        }
    }
    if !unknown.is_empty() {
        t.push_str("## Components without licence information\n\n");
        for u in &unknown {
            t.push_str(&format!("- {u}\n"));
        }
    }
    Notice {
        source: source.to_owned(),
        licenses: by.iter().map(|(k, v)| (k.clone(), v.len() as u64)).collect(),
        unknown,
        text: t,
    }
}

/// Which document language.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// German.
    De,
    /// English.
    #[default]
    En,
}

/// A proof a disclosure refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProofRef {
    /// Merkle root, hex.
    pub root: String,
    /// What was proved.
    pub source: String,
    /// When (ms since the Unix epoch).
    pub created_ms: u64,
    /// Files in it.
    pub files: u64,
    /// The signer's public key, hex.
    pub public_key: String,
}

/// An invention-disclosure draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Disclosure {
    /// Title.
    pub title: String,
    /// Language of the draft.
    pub language: Language,
    /// The draft as Markdown.
    pub markdown: String,
    /// The proof it carries, if any.
    pub proof: Option<ProofRef>,
}

/// Drafts the disclosure. CacheOS never files anything; the draft says so and lists the steps a person takes.
pub fn disclosure(title: &str, text: &str, lang: Language, proof: Option<ProofRef>, now_ms: u64) -> Disclosure {
    let today = date(now_ms);
    let mut md = String::new();
    let de = lang == Language::De;
    if de {
        md.push_str(&format!(
            "# Erfindungsmeldung (Entwurf): {title}\n\nErstellt am {today} von CacheOS.\n\n"
        ));
        md.push_str(
            "> CacheOS reicht nichts ein und nimmt mit keinem Amt Kontakt auf. Dieser Entwurf ist keine \
                     Rechtsberatung; prüfen Sie ihn mit einer Patentanwältin oder einem Patentanwalt.\n\n",
        );
        md.push_str(&format!("## Beschreibung\n\n{}\n\n", text.trim()));
        md.push_str("## Erfinderinnen und Erfinder\n\n- Name, Anschrift, Anteil: …\n\n## Stand der Technik\n\n…\n\n## Was ist neu?\n\n…\n\n");
    } else {
        md.push_str(&format!(
            "# Invention disclosure (draft): {title}\n\nDrafted on {today} by CacheOS.\n\n"
        ));
        md.push_str(
            "> CacheOS never files anything and contacts no office. This draft is not legal advice; review \
                     it with a patent attorney.\n\n",
        );
        md.push_str(&format!("## Description\n\n{}\n\n", text.trim()));
        md.push_str("## Inventors\n\n- Name, address, share: …\n\n## Prior art\n\n…\n\n## What is new?\n\n…\n\n");
    }
    match &proof {
        Some(p) => {
            let when = rfc3339(p.created_ms);
            if de {
                md.push_str(&format!(
                    "## Existenznachweis\n\n- Quelle: {}\n- Zeitpunkt: {when}\n- Dateien: {}\n- Merkle-Wurzel (SHA-256): `{}`\n- \
                     Öffentlicher Schlüssel (ed25519): `{}`\n\nMit „prüfe den Nachweis“ prüft CacheOS, ob die Dateien \
                     unverändert sind.\n\n",
                    p.source, p.files, p.root, p.public_key
                ));
            } else {
                md.push_str(&format!(
                    "## Proof of existence\n\n- Source: {}\n- Time: {when}\n- Files: {}\n- Merkle root (SHA-256): `{}`\n- \
                     Public key (ed25519): `{}`\n\nSay \"verify the proof\" to have CacheOS check that the files are \
                     unchanged.\n\n",
                    p.source, p.files, p.root, p.public_key
                ));
            }
        }
        None if de => md.push_str("## Existenznachweis\n\nNoch keiner; „beweise, dass die Dateien auf data heute existiert haben“ erstellt einen.\n\n"),
        None => md.push_str("## Proof of existence\n\nNone yet; \"prove that the files on data existed today\" makes one.\n\n"),
    }
    if de {
        md.push_str(
            "## Anmeldung — Schritte, die Sie selbst gehen\n\n\
             1. **DPMA** (Deutsches Patent- und Markenamt): Anmeldung elektronisch über DPMAdirektWeb oder schriftlich \
             (Formular P 2007) mit Beschreibung, Patentansprüchen, Zeichnungen und Zusammenfassung; Anmeldegebühr \
             binnen drei Monaten zahlen; Prüfungsantrag innerhalb von sieben Jahren.\n\
             2. **EPA** (Europäisches Patentamt): Anmeldung über die EPA-Online-Einreichung (MyEPO); Anmelde- und \
             Recherchengebühr innerhalb eines Monats; Priorität einer deutschen Anmeldung binnen zwölf Monaten \
             beanspruchen.\n\
             3. **WIPO** (PCT): internationale Anmeldung über ePCT beim DPMA oder EPA als Anmeldeamt, ebenfalls binnen \
             zwölf Monaten nach der ersten Anmeldung; nationale Phasen nach 30 Monaten.\n\
             4. Vor jeder Anmeldung nichts veröffentlichen: eine eigene Veröffentlichung kann die Neuheit zerstören.\n\n\
             Urheberrecht entsteht in Deutschland ohne Registrierung; der Existenznachweis oben belegt, dass die \
             Dateien zu diesem Zeitpunkt vorlagen.\n",
        );
    } else {
        md.push_str(
            "## Filing — steps you take yourself\n\n\
             1. **DPMA** (German Patent and Trade Mark Office): file online through DPMAdirektWeb or on paper (form \
             P 2007) with description, claims, drawings and abstract; pay the filing fee within three months; request \
             examination within seven years.\n\
             2. **EPO** (European Patent Office): file through the EPO's online filing (MyEPO); pay filing and search \
             fees within one month; claim the priority of a first filing within twelve months.\n\
             3. **WIPO** (PCT): an international application through ePCT with the DPMA or EPO as receiving office, \
             also within twelve months of the first filing; national phases start at 30 months.\n\
             4. Publish nothing before filing: your own publication can destroy novelty.\n\n\
             Copyright arises without registration in Germany and most countries; the proof of existence above shows \
             that the files existed at that time.\n",
        );
    }
    Disclosure {
        title: title.to_owned(),
        language: lang,
        markdown: md,
        proof,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_groups_texts_by_licence() {
        let c = |n: &str, l: Option<&str>| Component {
            ecosystem: "cargo".into(),
            name: n.into(),
            version: Some("1.0".into()),
            license: l.map(str::to_owned),
            found_in: "Cargo.lock".into(),
        };
        let n = notice(
            "sandbox web",
            &[c("a", Some("MIT OR Apache-2.0")), c("b", Some("MIT")), c("z", None)],
        );
        assert_eq!(n.licenses["MIT"], 2);
        assert_eq!(n.licenses["Apache-2.0"], 1);
        assert_eq!(n.unknown, ["z 1.0 (cargo)"]);
        assert!(n.text.contains("Permission is hereby granted, free of charge"));
        assert!(n.text.contains("TERMS AND CONDITIONS FOR USE, REPRODUCTION"));
    }

    #[test]
    fn disclosure_carries_the_proof_and_says_it_files_nothing() {
        let p = ProofRef {
            root: "ab".repeat(32),
            source: "drive data:/".into(),
            created_ms: 1_796_219_314_000,
            files: 3,
            public_key: "cd".repeat(32),
        };
        let d = disclosure(
            "Kühlrippe",
            "Eine neue Form.",
            Language::De,
            Some(p.clone()),
            1_796_219_314_000,
        );
        assert!(d.markdown.contains(&p.root));
        assert!(d.markdown.contains("2026-12-02T13:48:34Z"));
        assert!(d.markdown.contains("reicht nichts ein"));
        for office in ["DPMA", "EPA", "WIPO"] {
            assert!(d.markdown.contains(office));
        }
        let e = disclosure("Fin", "A new shape.", Language::En, None, 0);
        assert!(e.markdown.contains("never files anything"));
        assert!(e.markdown.contains("EPO"));
    }
}
