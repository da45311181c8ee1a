//! CacheOS's licence tooling: what licences a tree holds, SBOMs, third-party notices, signed proofs of existence
//! and disclosure drafts. No async, no network: the core calls it on a blocking thread, through [`SourceTree`].

pub mod compat;
pub mod docs;
pub mod manifest;
pub mod proof;
pub mod sbom;
pub mod scan;
pub mod tree;
pub mod tsa;
pub mod util;

pub use docs::{Disclosure, Language, Notice, ProofRef};
pub use proof::{ProofError, ProofManifest, Verification};
pub use sbom::{Component, SbomDocuments};
pub use scan::{Progress, ScanReport};
pub use tree::{BeneathTree, MemoryTree, SourceTree, TreeError};
