//! A throwaway PostgreSQL server for the tests: `initdb` into a temporary folder, `pg_ctl
//! start` on a free loopback port, stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root, so under root the server runs as `nobody`, which then
//! owns the temporary folder. Binaries come from `PATH` or Debian's
//! `/usr/lib/postgresql/<version>/bin`; `scripts/install-postgres.sh` installs them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// Set to make a missing PostgreSQL a failure instead of a skip (CI sets it).
pub const REQUIRE_ENV: &str = "SLIPWAY_REQUIRE_POSTGRES";

/// Unprivileged user the server runs as when the tests run as root.
const SERVER_USER: &str = "nobody";

pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
}

impl PgServer {
    /// Starts a server; `Ok(None)` when no PostgreSQL binaries are installed.
    pub fn start() -> Result<Option<Self>, String> {
        let Some(bin) = find_bin_dir() else {
            return Ok(None);
        };
        let run_as = is_root()?.then(|| SERVER_USER.to_owned());
        let dir = tempfile::Builder::new()
            .prefix("slipway-pg-")
            .tempdir()
            .map_err(|e| format!("temporary folder: {e}"))?;
        if let Some(user) = &run_as {
            let uid = id_number(&["-u", user])?;
            let gid = id_number(&["-g", user])?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.path().display()))?;
        }
        let port = free_port()?;
        let server = Self {
            dir,
            bin,
            run_as,
            port,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "slipway",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )?;
        server.start_server()?;
        Ok(Some(server))
    }

    /// Restarts the server (a fast shutdown: every connection is cut), waiting until it
    /// accepts connections again. Only some of the test binaries that share this file
    /// restart their server.
    #[allow(dead_code)]
    pub fn restart(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        )?;
        self.start_server()
    }

    /// `pg_ctl start`, its output going to the log (`pg_ctl restart` would hand the new
    /// server this process's pipe, which `run` then waits on forever).
    fn start_server(&self) -> Result<(), String> {
        let data = self.data_dir();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            path_str(self.dir.path())?
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-o",
                &options,
                "-l",
                path_str(&log)?,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map(|_| ())
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://slipway@127.0.0.1:{}/{name}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command.args(args).current_dir(self.dir.path());
        let output = command
            .output()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        if output.status.success() {
            Ok(output)
        } else {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            Err(format!(
                "{} {args:?} failed ({}):\n{}\n{}\n{log}",
                program.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Ok(data) = path_str(&self.data_dir()).map(str::to_owned) {
            // Nothing to keep, so no clean shutdown is needed.
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// `pg_ctl`'s folder: on PATH, else the newest Debian install.
fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> Result<bool, String> {
    Ok(id_number(&["-u"])? == 0)
}

fn id_number(args: &[&str]) -> Result<u32, String> {
    let output = Command::new("id")
        .args(args)
        .output()
        .map_err(|e| format!("id {args:?}: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("id {args:?}: {e}"))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("local_addr: {e}"))
}
