//! Rebuilds the crate when the dashboard's build output changes, so a release
//! binary always embeds the files that are in `dashboard/dist`.

fn main() {
    let dist = std::path::Path::new("../../dashboard/dist");
    if dist.exists() {
        println!("cargo:rerun-if-changed=../../dashboard/dist");
    } else {
        // Until the folder exists, watch its parent so its creation is noticed.
        println!("cargo:rerun-if-changed=../../dashboard");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
