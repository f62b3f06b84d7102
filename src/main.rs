//! The `distill` command: parses arguments and hands them to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = distill::cli::Cli::parse();
    match distill::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            let e = anyhow::Error::from(e);
            let message = e.to_string();
            eprintln!("error: {message}");
            // Causes already quoted in the message (I/O errors are) are not repeated.
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                }
            }
            std::process::ExitCode::from(code)
        }
    }
}
