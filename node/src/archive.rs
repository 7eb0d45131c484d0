//! History archives: status-go's wire format, partitioning, the builder, the cumulative index,
//! and the persisted per-community state. (Sealing for encrypted communities is [`crate::seal`],
//! re-exported here as `archive::seal`.)

pub mod builder;
pub mod format;
pub mod history;
pub mod importer;
pub mod index;
pub mod partition;
pub mod reader;
pub mod schedule;
pub mod seeder;
pub mod state;
pub mod store_sink;

pub use crate::seal;

pub use builder::{Builder, BuiltArchive, BuiltIndex, Outcome, Params, Sink};
pub use format::{Archive, Entry, Metadata};
pub use index::Index;
pub use store_sink::StoreSink;
