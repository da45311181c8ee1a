//! Issue 18: the licence replies render in German and English (here: a failed proof verification).

use cacheos_chat::engine::Lang;

#[test]
fn replies_render_in_both_languages() {
    let v = cacheos_core::license::Verification {
        source: "drive data:/".into(),
        root: "ab".into(),
        created: "2026-12-02T13:48:34Z".into(),
        root_matches: true,
        signature_valid: true,
        key_is_ours: true,
        timestamp: "none".into(),
        changes: vec![cacheos_core::license::Change {
            path: "a.txt".into(),
            change: "modified".into(),
        }],
        files_checked: true,
        intact: false,
    };
    let o = cacheos_core::Output::ProofVerified(v);
    let de = cacheos_chat::render_license::output(&o, Lang::De).unwrap();
    let en = cacheos_chat::render_license::output(&o, Lang::En).unwrap();
    assert!(de.contains("stimmt NICHT") && de.contains("a.txt: geändert"), "{de}");
    assert!(en.contains("does NOT hold") && en.contains("a.txt: modified"), "{en}");
}
