//! The chat engine: turns German or English text into one of the core's typed operations, a question back, or a
//! chat action (help, confirm, cancel, clear history). It is a front end: it never touches the system, and what it
//! proposes goes through the same executor, validation, risk classes and audit as every other front end.
//!
//! Pipeline: [`normalize`] (case, umlauts and their ASCII spellings, tokens, quoted strings) → [`lexicon`]
//! (words to concepts, with synonyms, typo tolerance and German compound splitting) → [`slots`] (sizes, CPU,
//! time windows, names) → [`engine`] (intent choice, session context, confirmation of destructive operations).

pub mod classifier;
pub mod dataset;
pub mod engine;
pub mod entities;
pub mod eval;
pub mod lang;
pub mod lexicon;
pub mod model;
pub mod normalize;
mod objects;
pub mod pipeline;
pub mod render;
pub mod render_diagnose;
pub mod render_kb;
pub mod render_license;
pub mod render_model;
pub mod render_software;
pub mod render_trust;
pub mod service;
pub mod slotfill;
pub mod slots;
pub mod stream;
pub mod train;

pub use engine::{ChatAction, Engine, Interpretation, Known, Lang, Session};
pub use model::{ModelBackend, ModelError, Proposal};
pub use service::{ChatError, ChatReply, ChatService};
