//! The `switchboard` command: parses the command line and hands it to the
//! application library ([`switchboard::main_with`]).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = switchboard::cli::Cli::parse();
    let filter = cli.command.default_log_filter();
    switchboard::main_with(cli.log_format.into(), filter, |shutdown| {
        cli.command.run(shutdown)
    })
}
