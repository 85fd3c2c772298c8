//! The channels a thread has (SPEC §6), named in the core: see [`chat_core::Channel`].

pub use chat_core::Channel;
