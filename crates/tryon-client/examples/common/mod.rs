//! What every example starts with: logging, and the person image taken
//! from the first command-line argument.

/// Logs `tryon_client` and the example `example` (its `module_path!()`)
/// at info level, to stdout.
pub(crate) fn init_logging(example: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(format!("tryon_client=info,{example}=info"))
        .init();
}

/// The first command-line argument (the person image) and the rest, or
/// `usage` as the error when there is none.
pub(crate) fn person_and_rest(
    usage: &'static str,
) -> Result<(String, impl Iterator<Item = String>), &'static str> {
    let mut args = std::env::args().skip(1);
    let person = args.next().ok_or(usage)?;
    Ok((person, args))
}
