//! Cairn's memory, in one place: a thread's messages as every agent step
//! reads them (`threads`: cached, rebuilt from the store), and the project's
//! long-term memory (`long_term`: remembered facts and library files in
//! embedded chunks, searched by similarity, with the hook that indexes a
//! saved library file). The vectors themselves live in the store (its
//! `vectors` module, SQLite `vec0` tables or pgvector).

mod long_term;
mod threads;

pub use long_term::{
    MAX_INDEXED_BYTES, MAX_QUERY_CHARS, MAX_RESULTS, MAX_TEXT_CHARS, MEMORY_OFF, Memory, MemoryError, chunks, indexable,
};
pub use threads::ThreadCache;
