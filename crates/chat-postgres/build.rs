// `embed_migrations!` reads ../../migrations at compile time; without this a new or
// changed migration would not rebuild the crate (diesel_migrations' documented advice).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
