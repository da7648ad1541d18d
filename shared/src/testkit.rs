//! The test kit: bodies the tests, the benches and the simulation generate alike, behind the
//! crate's `test-util` feature (the CLI and the tests turn it on through `local`; the Lambdas
//! never link it).
//!
//! Everything here is seeded: the same bytes on every run, so a failing case can be replayed and
//! a simulation's digest stays the same.

/// The seed of [`incompressible_base64`] (and of the simulation's large body).
pub const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// A seeded xorshift64 stream (Marsaglia's 13/7/17): fast, and nothing zstd or gzip can shrink.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A stream from `seed` (0 would stay 0: it is made odd).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` pseudo-random bytes from `seed`: what a media file is to a compressor.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    (0..n).map(|_| (rng.next_u64() >> 24) as u8).collect()
}

/// `n` lower-case letters from `seed`, each about 4.7 bits that no compressor takes back: text
/// too random to compress.
pub fn noise_letters(n: usize, seed: u64) -> String {
    let mut rng = XorShift::new(seed);
    (0..n).map(|_| char::from(b'a' + (rng.next_u64() % 26) as u8)).collect()
}

/// About `chars` characters of base64 of [`noise`]: media as Evolution inlines it (zstd gets no
/// more than base64's own 3/4 out of it).
pub fn incompressible_base64(chars: usize) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, noise(chars * 3 / 4, SEED))
}

/// Evolution's `messages.upsert` with `webhook_base64` on: message `id` of `instance`, an image
/// with `media_chars` characters of [`incompressible_base64`] inline, next to the content.
pub fn evolution_inline_media(instance: &str, id: &str, media_chars: usize) -> String {
    let media = incompressible_base64(media_chars);
    format!(
        r#"{{"event":"messages.upsert","instance":"{instance}","data":{{"key":{{"remoteJid":"5511900000001@s.whatsapp.net","fromMe":false,"id":"{id}"}},"message":{{"imageMessage":{{"mimetype":"image/png"}},"base64":"{media}"}},"messageType":"imageMessage","messageTimestamp":1790000000}}}}"#
    )
}

/// A Meta coexistence `history` chunk of about `bytes`: threads of text messages with varied
/// words (as compressible as real chat text, no more).
pub fn meta_history(bytes: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "oi",
        "tudo",
        "bem",
        "pedido",
        "entrega",
        "amanhã",
        "obrigado",
        "valor",
        "pix",
        "nota",
        "fiscal",
        "endereço",
        "rua",
        "número",
        "cep",
        "horário",
        "confirmo",
        "cancelar",
        "troca",
        "tamanho",
        "cor",
        "azul",
        "prazo",
        "frete",
    ];
    let mut rng = XorShift::new(SEED);
    let mut next = || rng.next_u64();
    let (mut threads, mut size, mut n) = (Vec::new(), 0, 0u64);
    while size < bytes {
        let user = format!("5511{:09}", next() % 1_000_000_000);
        let messages: Vec<serde_json::Value> = (0..20)
            .map(|_| {
                n += 1;
                let text: Vec<&str> = (0..(8 + next() % 30)).map(|_| WORDS[(next() % 24) as usize]).collect();
                serde_json::json!({
                    "from": user, "id": format!("wamid.HIST{n:08}{:016x}", next()), "timestamp": (1_700_000_000 + next() % 10_000_000).to_string(),
                    "type": "text", "text": {"body": text.join(" ")}, "history_context": {"status": "READ"}
                })
            })
            .collect();
        let thread = serde_json::json!({"id": user, "messages": messages});
        size += thread.to_string().len();
        threads.push(thread);
    }
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "history", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "PNID"},
            "history": [{"metadata": {"phase": 1, "chunk_order": 3, "progress": 40}, "threads": threads}]
        }}]}]
    }))
    .expect("json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_seeded_and_does_not_compress() {
        assert_eq!(noise(1_000, 7), noise(1_000, 7));
        assert_ne!(noise(1_000, 7), noise(1_000, 9));
        let bytes = noise(200_000, SEED);
        assert!(crate::event::item::compress(&bytes).len() > 199_000, "incompressible");
        let letters = noise_letters(200_000, SEED);
        assert!(letters.bytes().all(|b| b.is_ascii_lowercase()));
        let packed = crate::event::item::compress(letters.as_bytes()).len();
        assert!(
            packed * 8 > 200_000 * 46 / 10,
            "{packed} bytes: about 4.7 bits a letter"
        );
        let body = evolution_inline_media("i", "3EB0", 4_000);
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["data"]["message"]["base64"].as_str().map(str::len), Some(4_000));
        assert_eq!(v["data"]["key"]["id"], "3EB0");
    }
}
