//! Slot parsers: sizes ("1 GB", "512M", "1,5 GiB"), CPU shares ("2 Kerne", "50 %", "half a core") and time
//! windows ("letzte Stunde", "last 10 minutes", "heute").

use crate::normalize::Token;

/// Parses a number written with a German decimal comma or an English point.
pub fn number(s: &str) -> Option<f64> {
    let s = s.replace(',', ".");
    let v: f64 = s.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

fn size_unit(u: &str) -> Option<u64> {
    Some(match u {
        "b" | "byte" | "bytes" => 1,
        "k" | "kb" | "kib" | "kilobyte" | "kilobytes" | "kibibyte" => 1 << 10,
        "m" | "mb" | "mib" | "megabyte" | "megabytes" | "mega" | "megs" | "meg" | "mebibyte" => 1 << 20,
        "g" | "gb" | "gib" | "gigabyte" | "gigabytes" | "giga" | "gig" | "gigs" | "gibibyte" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tib" | "terabyte" | "terabytes" | "tera" | "tebibyte" => 1 << 40,
        _ => return None,
    })
}

/// A size in bytes from `tokens[i]` (and the next token for the unit): `1 GB`, `512M`, `1,5 GiB`. Units are
/// binary, as people mean them for RAM and disks. Returns the size and the number of tokens used.
pub fn size(tokens: &[Token], i: usize) -> Option<(u64, usize)> {
    let t = &tokens.get(i)?.norm;
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    // Sizes in words: "zwei Gigabyte", "ein halbes Gigabyte", "half a gig", "anderthalb GB".
    if num.is_empty() {
        let next = tokens.get(i + 1).map(|t| t.norm.as_str()).unwrap_or("");
        let after = tokens.get(i + 2).map(|t| t.norm.as_str()).unwrap_or("");
        let half = |w: &str| matches!(w, "halbes" | "halbe" | "halben" | "halbem" | "halber" | "halb" | "half");
        let (n, skip) = if half(t) && matches!(next, "a" | "an") {
            (0.5, 2)
        } else if half(t) {
            (0.5, 1)
        } else if matches!(t.as_str(), "ein" | "eine" | "einem" | "einen" | "a" | "an") && half(next) {
            (0.5, 2)
        } else if matches!(t.as_str(), "anderthalb" | "eineinhalb") {
            (1.5, 1)
        } else {
            (crate::entities::number_word(t)?, 1)
        };
        let unit = if skip == 2 { after } else { next };
        let mult = size_unit(unit).filter(|_| unit.len() > 1)?;
        return Some(((n * mult as f64).round() as u64, skip + 1));
    }
    let n = number(num)?;
    let (mult, used) = if unit.is_empty() {
        (size_unit(&tokens.get(i + 1)?.norm)?, 2)
    } else {
        (size_unit(unit)?, 1)
    };
    Some(((n * mult as f64).round() as u64, used))
}

/// A CPU share in CPUs (0.5 = half a CPU): `2 Kerne`, `2 cores`, `50 %`, `half a core`, `einen halben Kern`.
pub fn cpu(tokens: &[Token], i: usize) -> Option<(f64, usize)> {
    let t = tokens.get(i)?.norm.as_str();
    let next = tokens.get(i + 1).map(|t| t.norm.as_str()).unwrap_or("");
    let after = tokens.get(i + 2).map(|t| t.norm.as_str()).unwrap_or("");
    let is_core = |w: &str| {
        matches!(
            w,
            "kern"
                | "kerne"
                | "kernen"
                | "core"
                | "cores"
                | "cpu"
                | "cpus"
                | "prozessor"
                | "prozessoren"
                | "vcpu"
                | "vcpus"
        )
    };
    if let Some(p) = t.strip_suffix('%') {
        return Some((number(p)? / 100.0, 1));
    }
    if matches!(t, "half" | "halben" | "halbe" | "halber" | "halbem" | "halb") && is_core(next) {
        return Some((0.5, 2));
    }
    if matches!(t, "half" | "einen" | "ein" | "a")
        && matches!(next, "a" | "halben" | "halbe" | "halbem" | "half")
        && is_core(after)
    {
        return Some((0.5, 3));
    }
    // "ein viertel Kern", "a quarter of a core", "viertel CPU".
    let quarter = |w: &str| matches!(w, "viertel" | "quarter");
    if quarter(t) && is_core(next) {
        return Some((0.25, 2));
    }
    if quarter(t) && matches!(next, "of" | "eines") && is_core(after) {
        return Some((0.25, 3));
    }
    if quarter(t)
        && next == "of"
        && matches!(after, "a" | "one")
        && is_core(tokens.get(i + 3).map(|t| t.norm.as_str()).unwrap_or(""))
    {
        return Some((0.25, 4));
    }
    if matches!(t, "ein" | "einen" | "a") && quarter(next) && is_core(after) {
        return Some((0.25, 3));
    }
    if matches!(t, "anderthalb" | "eineinhalb") && is_core(next) {
        return Some((1.5, 2));
    }
    let n = match t {
        "ein" | "einen" | "one" | "a" => Some(1.0),
        "zwei" | "two" => Some(2.0),
        "drei" | "three" => Some(3.0),
        "vier" | "four" => Some(4.0),
        _ => number(t),
    }?;
    if matches!(next, "%" | "prozent" | "percent") {
        return Some((n / 100.0, 2));
    }
    is_core(next).then_some((n, 2))
}

/// A time window ending now, in milliseconds: `letzte Stunde`, `last 10 minutes`, `seit 2 Tagen`, `heute`, `today`.
pub fn window_ms(tokens: &[Token]) -> Option<u64> {
    const MIN: u64 = 60_000;
    let unit = |w: &str| -> Option<u64> {
        Some(match w {
            "sekunde" | "sekunden" | "second" | "seconds" | "sek" | "s" => 1000,
            "minute" | "minuten" | "minutes" | "min" | "m" => MIN,
            "stunde" | "stunden" | "hour" | "hours" | "std" | "h" => 60 * MIN,
            "tag" | "tage" | "tagen" | "day" | "days" | "d" => 24 * 60 * MIN,
            "woche" | "wochen" | "week" | "weeks" => 7 * 24 * 60 * MIN,
            _ => return None,
        })
    };
    for (i, t) in tokens.iter().enumerate() {
        let w = t.norm.as_str();
        if matches!(w, "heute" | "today") {
            return Some(24 * 60 * MIN);
        }
        if let Some(u) = unit(w) {
            let prev = i.checked_sub(1).map(|j| tokens[j].norm.as_str()).unwrap_or("");
            let n = number(prev).or(match prev {
                "einer" | "einem" | "one" | "a" | "an" | "letzte" | "letzten" | "letzter" | "last" | "past"
                | "vergangene" | "vergangenen" => Some(1.0),
                "zwei" | "two" => Some(2.0),
                _ => None,
            });
            if let Some(n) = n {
                return Some((n * u as f64) as u64);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::tokens;

    #[test]
    fn sizes() {
        let cases = [
            ("1 GB", 1u64 << 30),
            ("512M", 512 << 20),
            ("1,5 GiB", 3 << 29),
            ("1.5gb", 3 << 29),
            ("2 Gigabyte", 2 << 30),
            ("100 mb", 100 << 20),
        ];
        for (s, want) in cases {
            assert_eq!(size(&tokens(s), 0).map(|x| x.0), Some(want), "{s}");
        }
        assert_eq!(size(&tokens("2 kerne"), 0), None);
        assert_eq!(size(&tokens("viel"), 0), None);
    }

    #[test]
    fn cpus() {
        let cases = [
            ("2 Kerne", 2.0),
            ("50 %", 0.5),
            ("50%", 0.5),
            ("half a core", 0.5),
            ("einen halben Kern", 0.5),
            ("1,5 cores", 1.5),
            ("zwei CPUs", 2.0),
        ];
        for (s, want) in cases {
            assert_eq!(cpu(&tokens(s), 0).map(|x| x.0), Some(want), "{s}");
        }
        assert_eq!(cpu(&tokens("2 GB"), 0), None);
    }

    #[test]
    fn windows() {
        assert_eq!(window_ms(&tokens("der letzten Stunde")), Some(3_600_000));
        assert_eq!(window_ms(&tokens("last 10 minutes")), Some(600_000));
        assert_eq!(window_ms(&tokens("seit 2 Tagen")), Some(2 * 86_400_000));
        assert_eq!(window_ms(&tokens("von heute")), Some(86_400_000));
        assert_eq!(window_ms(&tokens("alles")), None);
    }
}
