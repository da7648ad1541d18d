//! `wahooks publish-sns`: Meta webhook files published to an SNS topic as AWS End User Messaging
//! Social publishes them (one document per entry), for the local stack's stand-in topic (what
//! `make run` creates) or a test topic of yours.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// `wahooks publish-sns` arguments.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// The topic (`make run` writes its stand-in's ARN to `.wahooks/env`).
    #[arg(long, env = "WAHOOKS_SOCIAL_TOPIC_ARN")]
    topic_arn: String,
    /// The AWS account id the documents name (`aws_account_id`): the source's.
    #[arg(long, env = "WAHOOKS_SOCIAL_ACCOUNT")]
    account: String,
    /// Publish each document this many times (SNS standard topics may deliver twice: the
    /// duplicates are stored once).
    #[arg(long, default_value_t = 1)]
    times: usize,
    /// Meta webhook JSON files, or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Run `publish-sns`.
pub async fn run(args: PublishArgs) -> ExitCode {
    match publish(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let sns = aws_sdk_sns::Client::new(&wahooks::config::aws_config().await);
    let mut published = 0;
    for file in crate::send::payload_files(&args.paths)? {
        let body = std::fs::read(&file).with_context(|| file.display().to_string())?;
        let documents = wahooks::social::documents_of(&body, &args.account)
            .with_context(|| format!("{}: not a Meta webhook", file.display()))?;
        for document in &documents {
            for _ in 0..args.times {
                sns.publish()
                    .topic_arn(&args.topic_arn)
                    .message(document)
                    .send()
                    .await
                    .with_context(|| format!("publishing {} to {}", file.display(), args.topic_arn))?;
                published += 1;
            }
        }
        println!("{}: {} document(s)", file.display(), documents.len());
    }
    println!("{published} message(s) published to {}", args.topic_arn);
    Ok(())
}
