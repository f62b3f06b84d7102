//! The `distill` command: parses arguments and hands them to the library.

mod cli;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so a print to a closed pipe (`distill eval --json | head -c 10`)
    // would panic; the default action ends the process quietly, as other command-line tools
    // do. Files are written atomically, so nothing half-written is left behind.
    #[cfg(unix)]
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::parse();
    match cli::run(cli) {
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
