//! The `tryon` command (skeleton; filled by the CLI issue).

fn main() {
    eprintln!("tryon: not yet implemented");
    std::process::exit(2);
}
