//! The `edgestore` command-line tool.
fn main() -> anyhow::Result<()> {
    Ok(())
}
