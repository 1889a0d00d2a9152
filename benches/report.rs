//! Prints the table of `benches/session.rs` again from the medians criterion saved: each
//! layer benchmark against its baseline, as added nanoseconds per request and as a
//! throughput ratio. Measures nothing.
//!
//! ```sh
//! cargo bench --bench session   # measures, then prints the table
//! cargo bench --bench report    # prints it again
//! ```

#[path = "support/ratio.rs"]
mod ratio;

fn main() {
    // `cargo test --all-targets` runs this too: nothing to report then.
    if !ratio::measured() {
        return;
    }
    print!("{}", ratio::report(&ratio::criterion_dir()));
}
