//! Fake of Segmind's P-Image Try-On API for tests (skeleton; filled by the
//! mock issue). Builds its responses from the generated [`tryon_api`] types.
