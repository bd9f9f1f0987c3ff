//! One of our binaries started by a test, as users run it: on ephemeral ports, ready once it
//! printed the lines that give its addresses, killed when the test ends.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running program, killed (and reaped) when dropped, also when the test panics.
///
/// Every line it prints on stdout (where our binaries log) or stderr is echoed to the test's
/// stderr with the program's name, so a failing test shows the log and a passing one hides it,
/// and kept for [`TestProcess::output`].
pub struct TestProcess {
    child: Child,
    addresses: HashMap<String, String>,
    output: Arc<Mutex<String>>,
}

impl TestProcess {
    /// Starts `command` and waits until, for each of `ready_prefixes`, it printed a line
    /// starting with that prefix; the rest of such a line is the address
    /// [`TestProcess::address`] returns. Fails the test if the program exits first or is not
    /// ready within `timeout`.
    pub fn start(mut command: Command, ready_prefixes: &[&str], timeout: Duration) -> TestProcess {
        let program = command.get_program().to_string_lossy().into_owned();
        let name = std::path::Path::new(&program).file_name().map_or_else(
            || program.clone(),
            |name| name.to_string_lossy().into_owned(),
        );
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("{program} starts: {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let output = Arc::new(Mutex::new(String::new()));
        let keep = |output: &Arc<Mutex<String>>, line: &str| {
            if let Ok(mut output) = output.lock() {
                output.push_str(line);
                output.push('\n');
            }
        };
        {
            let (output, log_name) = (output.clone(), name.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    keep(&output, &line);
                    eprintln!("{log_name}: {line}");
                }
            });
        }
        let prefixes: Vec<String> = ready_prefixes.iter().map(|&p| p.to_owned()).collect();
        let (sender, receiver) = std::sync::mpsc::channel();
        let log_name = name.clone();
        let kept = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                keep(&kept, &line);
                match prefixes
                    .iter()
                    .find(|prefix| line.starts_with(prefix.as_str()))
                {
                    Some(prefix) => {
                        let _ = sender.send((prefix.clone(), line[prefix.len()..].to_owned()));
                    }
                    None => eprintln!("{log_name}: {line}"),
                }
            }
        });
        let deadline = Instant::now() + timeout;
        let mut addresses = HashMap::new();
        while addresses.len() < ready_prefixes.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok((prefix, address)) => {
                    addresses.insert(prefix, address);
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{name} did not print {ready_prefixes:?} within {timeout:?}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait();
                    panic!("{name} exited before it was ready: {status:?}");
                }
            }
        }
        TestProcess {
            child,
            addresses,
            output,
        }
    }

    /// Everything the program printed so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .map(|output| output.clone())
            .unwrap_or_default()
    }

    /// What followed `ready_prefix` on the line that announced it.
    pub fn address(&self, ready_prefix: &str) -> &str {
        self.addresses
            .get(ready_prefix)
            .unwrap_or_else(|| panic!("{ready_prefix:?} is not one of the ready prefixes"))
    }

    /// The operating system's id of the process.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// How the program exited, if it did.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn ready_once_every_prefix_was_printed() {
        let process = TestProcess::start(
            shell("echo noise; echo 'http on http://a:1'; echo 'grpc on b:2'; exec sleep 30"),
            &["http on ", "grpc on "],
            Duration::from_secs(10),
        );
        assert_eq!(process.address("http on "), "http://a:1");
        assert_eq!(process.address("grpc on "), "b:2");
    }

    #[test]
    fn a_program_that_exits_before_it_is_ready_fails_at_once() {
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(|| {
            TestProcess::start(shell("echo oops"), &["ready "], Duration::from_secs(60))
        });
        assert!(outcome.is_err());
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn dropping_kills_the_program() {
        let process = TestProcess::start(
            shell("echo 'ready x'; exec sleep 60"),
            &["ready "],
            Duration::from_secs(10),
        );
        let proc_dir = std::path::PathBuf::from(format!("/proc/{}", process.id()));
        drop(process);
        assert!(!proc_dir.exists(), "the program outlived its TestProcess");
    }
}
