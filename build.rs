// Templates and scripts are embedded with `include_dir!`, which cargo cannot
// see on stable Rust: rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=scripts");
}
