//! History archives: status-go's wire format, partitioning, the builder, the cumulative index,
//! sealing for encrypted communities, and the persisted per-community state.

pub mod builder;
pub mod format;
pub mod importer;
pub mod index;
pub mod partition;
pub mod schedule;
pub mod seal;
pub mod seeder;
pub mod state;
pub mod store_sink;

pub use builder::{Builder, BuiltArchive, BuiltIndex, Outcome, Params, Sink};
pub use format::{Archive, Entry, Metadata};
pub use index::Index;
pub use store_sink::StoreSink;
