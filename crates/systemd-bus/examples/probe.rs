//! Reads unit state over a systemd private socket, and times it: `probe SOCKET RUNS UNIT...`.
//! Each run connects afresh, as a module run does.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};
use systemd_bus::Bus;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let socket = args.next().ok_or("usage: probe SOCKET RUNS UNIT...")?;
    let runs: usize = args.next().ok_or("usage: probe SOCKET RUNS UNIT...")?.parse()?;
    let units: Vec<String> = args.collect();
    let names: Vec<&str> = units.iter().map(String::as_str).collect();
    let props = [
        ("org.freedesktop.systemd1.Unit", "ActiveState"),
        ("org.freedesktop.systemd1.Unit", "UnitFileState"),
        ("org.freedesktop.systemd1.Unit", "LoadState"),
        ("org.freedesktop.systemd1.Unit", "SubState"),
        ("org.freedesktop.systemd1.Unit", "NeedDaemonReload"),
        ("org.freedesktop.systemd1.Service", "NRestarts"),
    ];
    let (mut connect, mut read) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let t0 = Instant::now();
        let path = std::path::Path::new(&socket);
        let mut bus = if socket.contains("dbus") {
            Bus::connect_message_bus(path, Duration::from_secs(3))?
        } else {
            Bus::connect(path, Duration::from_secs(3))?
        };
        let t1 = Instant::now();
        let values = bus.unit_properties(&names, &props)?;
        let t2 = Instant::now();
        if i == 0 {
            for (unit, v) in names.iter().zip(&values) {
                println!("{unit}: {v:?}");
            }
        }
        connect.push(t1 - t0);
        read.push(t2 - t1);
    }
    connect.sort();
    read.sort();
    println!(
        "median connect+auth {:?}, median reads {:?} over {runs} runs",
        connect[runs / 2],
        read[runs / 2]
    );
    Ok(())
}
