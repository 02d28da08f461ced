//! Ergonomic client for Segmind's P-Image Try-On API (skeleton; filled by
//! the client issue). Built on the generated [`tryon_api`] crate.
