//! TEST FIXTURE: runs the simulated model provider (see the library docs).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "sim-provider",
    about = "TEST FIXTURE: a simulated OpenAI- and Anthropic-compatible model provider"
)]
struct Args {
    /// Address to listen on; port 0 picks one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "sim-provider listening on http://{}",
        listener.local_addr()?
    );
    tollgate_sim_provider::serve(listener).await
}
