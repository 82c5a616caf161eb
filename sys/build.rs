//! Names the readiness mechanism of the target OS once, as `cfg(tulip_epoll)` and
//! `cfg(tulip_kqueue)`, so the sources do not repeat the list of BSDs at every use.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tulip_epoll)");
    println!("cargo::rustc-check-cfg=cfg(tulip_kqueue)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    match os.as_str() {
        "linux" | "android" => println!("cargo::rustc-cfg=tulip_epoll"),
        "macos" | "ios" | "tvos" | "watchos" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" => {
            println!("cargo::rustc-cfg=tulip_kqueue")
        }
        _ => {}
    }
}
