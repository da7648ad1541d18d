//! The `media-archiver` function: the media queue (the fanout's notes of messages with a media
//! file, and its own retries) → each file fetched once into S3 → `whatsapp.media.archived` or
//! `.failed` stored in the message's chat (partial batch failures reported).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wahooks::lambda::run_media_archiver().await
}
