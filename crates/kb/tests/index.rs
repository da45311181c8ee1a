//! The tantivy knowledge base against real files: citations, incremental runs, removal, and bad input (an empty
//! tree, a large log, a PDF without text, a symlink loop and links leading out, a file deleted while indexing).

use std::io::Write;
use std::sync::atomic::AtomicBool;

use cacheos_core::kb::KnowledgeBase;
use cacheos_kb::{KbConfig, TantivyKb};

fn kb(dir: &std::path::Path) -> TantivyKb {
    TantivyKb::open(&dir.join("kb"), KbConfig::default()).unwrap()
}

fn write(root: &std::path::Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const GUIDE: &str = "# Guide\n\n## Drives\n\nAttach an image with drive attach.\n\n## Schreibbar einhängen\n\nEin ISO-Abbild wird schreibbar eingehängt, wenn man read-write angibt.\nDann bekommt es eine Schreibschicht.\n";

#[test]
fn search_cites_file_heading_and_lines_and_runs_are_incremental() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("src");
    write(&root, "guide.md", GUIDE);
    write(
        &root,
        "notes/rechnung.txt",
        "Rechnungsdatum: 14. März\nBetrag: 120 Euro\n",
    );
    let kb = kb(t.path());
    let stop = AtomicBool::new(false);
    let r = kb.index("data", &root, None, &mut |_| {}, &stop).unwrap();
    assert_eq!((r.indexed, r.unchanged, r.skipped), (2, 0, 0));

    let hits = kb.search("wie hänge ich ein ISO schreibbar ein", 5).unwrap();
    let c = &hits[0].citation;
    assert_eq!((c.source.as_str(), c.path.as_str()), ("data", "guide.md"));
    assert_eq!(c.heading.as_deref(), Some("Schreibbar einhängen"));
    assert_eq!((c.line_start, c.line_end), (7, 10));
    assert!(hits[0].coverage > 0.9, "{:?}", hits[0]);

    // The compound "Rechnungsdatum" is found by its parts.
    let hits = kb.search("Datum der Rechnung", 5).unwrap();
    assert_eq!(hits[0].citation.path, "notes/rechnung.txt");

    let r = kb.index("data", &root, None, &mut |_| {}, &stop).unwrap();
    assert_eq!((r.indexed, r.unchanged), (0, 2));
    write(&root, "guide.md", &GUIDE.replace("drive attach", "drive attach NAME"));
    std::fs::remove_file(root.join("notes/rechnung.txt")).unwrap();
    let r = kb.index("data", &root, None, &mut |_| {}, &stop).unwrap();
    assert_eq!((r.indexed, r.unchanged, r.removed), (1, 0, 1));
    assert!(kb.search("Rechnung März", 5).unwrap().is_empty());
    let s = kb.sources().unwrap();
    assert_eq!((s[0].name.as_str(), s[0].documents), ("data", 1));

    // Reopening keeps everything.
    drop(kb);
    let kb = self::kb(t.path());
    assert_eq!(kb.search("attach image", 5).unwrap()[0].citation.path, "guide.md");
    assert!(kb.remove("data").unwrap());
    assert!(!kb.remove("data").unwrap());
    assert!(kb.search("attach image", 5).unwrap().is_empty());
    assert!(kb.sources().unwrap().is_empty());
}

#[test]
fn bad_input_is_counted_and_skipped() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("src");
    std::fs::create_dir_all(&root).unwrap();
    let kb = kb(t.path());
    let stop = AtomicBool::new(false);
    // An empty drive.
    let r = kb.index("empty", &root, None, &mut |_| {}, &stop).unwrap();
    assert_eq!((r.indexed, r.skipped), (0, 0));

    // A symlink loop, a link leading out, a PDF without text, a binary file.
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::os::unix::fs::symlink("..", root.join("d/up")).unwrap();
    let outside = t.path().join("secret.txt");
    std::fs::write(&outside, "geheimes Passwort swordfish").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("out.txt")).unwrap();
    std::fs::write(root.join("scan.pdf"), blank_pdf()).unwrap();
    std::fs::write(root.join("blob.txt"), [0u8, 1, 2, 3, 0, 9]).unwrap();
    write(&root, "ok.md", "# Fine\n\nswordfish is a fish\n");
    let r = kb.index("bad", &root, None, &mut |_| {}, &stop).unwrap();
    assert_eq!(r.indexed, 1, "{r:?}");
    assert_eq!(r.skipped, 5, "{r:?}: 3 links, the PDF without text, the binary");
    let hits = kb.search("swordfish", 5).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].citation.path, "ok.md");

    // A path below the root that leads out through a link is refused.
    assert!(kb.index("bad2", &root, Some("d/up"), &mut |_| {}, &stop).is_err());
    assert!(kb.index("bad3", &root, Some("../"), &mut |_| {}, &stop).is_err());
}

#[test]
fn a_large_log_is_read_up_to_the_limit_and_deleted_files_are_skipped() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("src");
    std::fs::create_dir_all(&root).unwrap();
    // 300 MB of log lines (written through a buffer; the index reads the first 8 MiB).
    let mut f = std::io::BufWriter::new(std::fs::File::create(root.join("huge.log")).unwrap());
    let line = b"2026-12-02T10:00:00 cacheosd[1]: sampled metrics cpu=3% mem=41% disk=12%\n";
    let mut n = 0u64;
    while n < 300 << 20 {
        f.write_all(line).unwrap();
        n += line.len() as u64;
    }
    writeln!(f, "2026-12-02T11:00:00 cacheosd[1]: needle at the very end").unwrap();
    drop(f);
    for i in 0..50 {
        write(
            &root,
            &format!("many/{i}.txt"),
            &format!("file number {i} about apples"),
        );
    }
    let kb = TantivyKb::open(
        &t.path().join("kb"),
        KbConfig {
            max_file_bytes: 8 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    let stop = AtomicBool::new(false);
    // Files vanish while the job runs: the progress callback deletes them after the walk listed them.
    let mut deleted = false;
    let many = root.join("many");
    let r = kb
        .index(
            "logs",
            &root,
            None,
            &mut |_| {
                if !deleted {
                    deleted = true;
                    for i in 10..20 {
                        let _ = std::fs::remove_file(many.join(format!("{i}.txt")));
                    }
                }
            },
            &stop,
        )
        .unwrap();
    assert_eq!(r.indexed, 41, "{r:?}");
    assert_eq!(r.skipped, 10, "{r:?}");
    assert!(kb.search("sampled metrics", 3).unwrap()[0].citation.path == "huge.log");
    assert!(
        kb.search("needle", 3).unwrap().is_empty(),
        "beyond the limit is not indexed"
    );
}

#[test]
fn cancel_stops_early_and_keeps_what_was_indexed() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("src");
    for i in 0..30 {
        write(&root, &format!("{i:02}.txt"), &format!("pears {i}"));
    }
    let kb = kb(t.path());
    let stop = AtomicBool::new(false);
    let r = kb
        .index(
            "c",
            &root,
            None,
            &mut |p| {
                if p.files_done == 5 {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst)
                }
            },
            &stop,
        )
        .unwrap();
    assert!(r.cancelled);
    assert_eq!(r.indexed, 5);
    assert_eq!(kb.sources().unwrap()[0].documents, 5);
    let stop = AtomicBool::new(false);
    let r = kb.index("c", &root, None, &mut |_| {}, &stop).unwrap();
    assert_eq!((r.indexed, r.unchanged), (25, 5));
}

/// A one-page PDF with no text layer (just a filled rectangle).
fn blank_pdf() -> Vec<u8> {
    use lopdf::{dictionary, Object, Stream};
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content = Stream::new(dictionary! {}, b"0 0 0 rg 10 10 100 100 re f".to_vec());
    let content_id = doc.add_object(content);
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "MediaBox" => vec![0.into(), 0.into(), 200.into(), 200.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {"Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1}),
    );
    let catalog_id = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn a_sparse_two_gigabyte_log_is_read_up_to_the_limit_only() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("src");
    std::fs::create_dir_all(&root).unwrap();
    // 2 GiB on paper, a few KB on disk: log lines at the start, a hole, a line at the very end.
    let path = root.join("big.log");
    let mut f = std::fs::File::create(&path).unwrap();
    for i in 0..100 {
        writeln!(
            f,
            "2026-12-02T10:00:{:02} cacheosd[1]: rotated journal segment {i}",
            i % 60
        )
        .unwrap();
    }
    f.set_len(2 << 30).unwrap();
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start((2 << 30) - 64)).unwrap();
    writeln!(f, "needle beyond every limit").unwrap();
    drop(f);
    assert!(std::fs::metadata(&path).unwrap().len() >= (2 << 30) - 64);
    write(&root, "ok.md", "# Fine\n\nrotated tyres are fine\n");
    let kb = TantivyKb::open(
        &t.path().join("kb"),
        KbConfig {
            max_file_bytes: 4 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    let stop = AtomicBool::new(false);
    let r = kb.index("big", &root, None, &mut |_| {}, &stop).unwrap();
    // The first 4 MiB are the log's head and then the hole's NUL bytes: the file is skipped as binary, nothing
    // beyond the limit is read, and the other file is indexed.
    assert_eq!((r.indexed, r.skipped), (1, 1), "{r:?}");
    assert!(kb.search("needle", 3).unwrap().is_empty());
    let hits = kb.search("rotated", 5).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].citation.path, "ok.md");
}
