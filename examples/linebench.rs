//! Times plc-verify's line checks alone (parse, order, repeats, distinct
//! DIDs; no decompression, no hashing) on an archive's bundles, to
//! measure changes to them apart from the noise of the whole run:
//!
//!     cargo run --release --example linebench -- DIR [ROUNDS]
//!
//! Prints the best and the median time per round over all bundles, and
//! the rate over the content's bytes.
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(args.get(1).expect("usage: linebench DIR [ROUNDS]"));
    let rounds: usize = args.get(2).map_or(9, |r| r.parse().expect("ROUNDS"));
    let idx = plcbundle::repo::load_index(dir)
        .expect("an index")
        .expect("an archive");
    let contents: Vec<Vec<u8>> = idx
        .bundles
        .iter()
        .map(|e| plcbundle::repo::read_bundle(dir, e).expect("a bundle"))
        .collect();
    let bytes: usize = contents.iter().map(Vec::len).sum();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for c in &contents {
            std::hint::black_box(plcbundle::verify::scan_lines(c));
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "best {:.4} s  median {:.4} s  {:.0} MB/s",
        times[0],
        times[rounds / 2],
        bytes as f64 / times[0] / 1e6
    );
}
