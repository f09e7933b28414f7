//! `ogpu provider`: what a GPU provider runs. `detect` shows the device profile this
//! machine would register: its GPUs (through NVML, when the driver is there) and its CPU,
//! with measured throughput.

use anyhow::Result;
use clap::Subcommand;
use ogpu_core::spec::DeviceKind;

use crate::task::Format;

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Detect and measure this machine's devices.
    Detect {
        /// The region the profile names.
        #[arg(long, default_value = "local")]
        region: String,
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        format: Format,
    },
}

pub fn run(command: ProviderCommand) -> Result<()> {
    let ProviderCommand::Detect { region, format } = command;
    let profile = ogpu_provider::devices::detect(&region);
    match format {
        Format::Json => println!("{}", serde_json::to_string(&profile)?),
        Format::Table => {
            println!("region {}", profile.region);
            for device in &profile.devices {
                let kind = if device.kind == DeviceKind::Gpu { "gpu" } else { "cpu" };
                let gflops =
                    if device.gflops == 0 { "not measured".into() } else { format!("{} GFLOPS", device.gflops) };
                println!("{kind}  {}  {} MiB  {gflops}", device.model, device.memory_mb);
            }
        }
    }
    Ok(())
}
