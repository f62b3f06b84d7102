//! The `distill` command: parses arguments and hands them to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = distill::cli::Cli::parse();
    match distill::cli::run(cli).map_err(anyhow::Error::from) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
