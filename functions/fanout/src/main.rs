//! The `fanout` function (DynamoDB stream → SQS) lands with the "Fan out" issue.

fn main() {
    eprintln!("fanout: not implemented yet");
    std::process::exit(1);
}
