//! Rebuild when the web app's build output changes, so a release binary
//! always embeds the current `web/dist`.

fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
