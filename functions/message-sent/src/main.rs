//! The `message-sent` receiver: `/v1/hooks/{token}/...` → authenticate → parse → store → 200.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    wahooks::lambda::run_receiver(wahooks::Route::MessageSent).await
}
