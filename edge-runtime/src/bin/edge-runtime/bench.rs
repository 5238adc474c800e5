//! `edge-runtime bench`: latency at batch 1 and throughput at batch 64, as a table.

use gan_edge_runtime::bench;

use crate::cli::BenchArgs;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs { model, runs } = args;
    let mut g = model.load()?;
    println!("| batch | runs | median ms per call | ms per image | images/s |");
    println!("|---|---|---|---|---|");
    for row in bench::bench(&mut g, &[1, 64], runs)? {
        println!(
            "| {} | {} | {:.3} | {:.4} | {:.0} |",
            row.batch,
            row.runs,
            row.median_s * 1e3,
            row.median_s * 1e3 / row.batch as f64,
            row.batch as f64 / row.median_s
        );
    }
    Ok(())
}
