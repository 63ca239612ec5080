//! One function per subcommand; errors become exit codes here and nowhere else.

mod compare;
mod plan;
mod report;

use crate::cli::{Cli, Command};
use crate::error::RunError;
use crate::exit_code;

pub use plan::plan_text;

pub fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Run(args) => crate::run::run(args),
        Command::Report { run_dir, template } => report::report(&run_dir, template.as_deref()),
        Command::Compare {
            base,
            new,
            max_regression,
            force,
            format,
        } => compare::compare(&base, &new, &max_regression, force, format),
        Command::Validate { plans, set } => plan::validate(&plans, &set),
        Command::Plan {
            plan,
            format,
            set,
            only,
        } => plan::show(&plan, format, &set, only.as_deref()),
        Command::Schema => {
            print!("{}", crate::plan::json_schema());
            Ok(())
        }
        Command::DemoImage { tag, lb_tag } => {
            crate::system::docker_image::demo_image_command(&tag, &lb_tag)
                .map_err(|e| RunError::Failed(e.to_string()))
        }
        Command::DemoTarget(args) => {
            crate::demo_target::run(args).map_err(|e| RunError::Usage(e.to_string()))
        }
        Command::Supervise(args) => {
            return match crate::system::supervise::supervise(args) {
                Ok(code) => u8::try_from(code).unwrap_or(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    exit_code::RUN_FAILED
                }
            };
        }
    };
    match result {
        Ok(()) => exit_code::OK,
        Err(e) => {
            e.print();
            e.exit_code()
        }
    }
}
