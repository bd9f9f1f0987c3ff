//! A RabbitMQ vhost of a test's own, so tests share the one broker without seeing each
//! other's exchanges and queues. Made with `rabbitmqctl` (the management plugin is not needed).

use std::process::Command;

/// The broker every machine runs for the tests (guest/guest).
const BROKER: &str = "127.0.0.1:5672";

/// A vhost with a unique name on the local broker, `guest` allowed everything in it, deleted
/// on drop (also when the test panics). Needs `rabbitmqctl`; `bash scripts/test` starts the
/// broker if it is down.
pub struct Vhost {
    name: String,
}

impl Vhost {
    pub fn create() -> Vhost {
        let name = format!("okla_test_{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &name]);
        let vhost = Vhost { name };
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        vhost
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vhost on the local broker.
    pub fn amqp_url(&self) -> String {
        self.amqp_url_via(BROKER)
    }

    /// The vhost reached through `address` (`host:port`), e.g. a proxy a test can cut.
    pub fn amqp_url_via(&self, address: &str) -> String {
        format!("amqp://guest:guest@{address}/{}", self.name)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let deleted = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .output();
        if !deleted.is_ok_and(|output| output.status.success()) {
            eprintln!("could not delete RabbitMQ vhost {}", self.name);
        }
    }
}

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (RabbitMQ must be installed; `bash scripts/test` starts it)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
