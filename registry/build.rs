//! `sqlx::migrate!` embeds the migration folders at compile time; a new migration file must
//! rebuild the crate, which stable Rust's proc macros cannot request by themselves.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
