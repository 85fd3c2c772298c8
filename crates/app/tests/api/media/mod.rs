//! Media (issues 6 and 30): upload URLs, images judged by content as they are
//! uploaded, sealed at rest, thumbnails, signed downloads opened by the service, and
//! the purge, each on the local-file backend and on a real S3-compatible server
//! (`s3s-fs`, which checks the service's own signature on every request). Every upload
//! and download goes through the service's `/media/…` routes, whatever the backend.

#[macro_use]
mod support;

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use support::*;

on_each_backend!(upload_post_list_and_download_the_same_bytes);
async fn upload_post_list_and_download_the_same_bytes(store: Store) {
    let app = spawn(&store, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");

    let ticket = upload_url(&app, &t, thread, "image/png").await;
    let path = ticket["mediaPath"].as_str().unwrap();
    assert!(path.starts_with(&format!("chats/{thread}/")) && path.ends_with(".png"));
    assert_eq!(ticket["method"], "PUT");
    assert_eq!(ticket["headers"]["Content-Type"], "image/png");
    assert!(ticket["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert!(
        ticket["uploadUrl"]
            .as_str()
            .unwrap()
            .starts_with(&app.url("/media/")),
        "the service's own URL"
    );
    assert_eq!(upload(&app, &ticket, PNG).await, 200);
    let thumb = path.replace(
        &format!("chats/{thread}/"),
        &format!("chats/{thread}/thumbs/"),
    );
    assert_eq!(
        files_under(&store.objects()),
        [path.to_owned(), thumb.clone()],
        "the image and its thumbnail, under their keys"
    );
    for key in [path, thumb.as_str()] {
        let stored = std::fs::read(store.objects().join(key)).unwrap();
        assert!(
            !stored.starts_with(b"\x89PNG"),
            "{key} is sealed, not an image"
        );
    }

    json_of(post_image(&app, &t, thread, path).await, 200).await;
    let listed = app.all_messages(&t, thread).await;
    assert_eq!(listed[0]["type"], "image");
    let url = listed[0]["media_url"].as_str().unwrap();
    let got = app.client.get(url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.headers()["x-content-type-options"], "nosniff");
    assert!(got.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    assert_eq!(got.bytes().await.unwrap().as_ref(), PNG);
    let thumb_url = listed[0]["thumb_url"].as_str().unwrap();
    let got = app.client.get(thumb_url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(
        pixels(&got.bytes().await.unwrap()),
        pixels(PNG),
        "1×1 stays 1×1"
    );
}

on_each_backend!(forged_expired_and_misused_urls_are_refused);
async fn forged_expired_and_misused_urls_are_refused(store: Store) {
    let app = spawn(
        &store,
        &[
            ("CHAT_SIGNED_URL_TTL", "2"),
            ("CHAT_MAX_UPLOAD_BYTES", "1000"),
        ],
    )
    .await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let ticket = upload_url(&app, &t, thread, "image/png").await;
    let url = ticket["uploadUrl"].as_str().unwrap().to_owned();

    // A tampered signature, another key, a wrong content type, a GET with a PUT URL,
    // a missing signature: all 403, and nothing stored.
    let sig_at = signature_at(&url);
    let mut tampered = url.clone();
    let flipped = if &url[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(sig_at..sig_at + 1, flipped);
    assert_eq!(put(&app, &tampered, "image/png", PNG.to_vec()).await, 403);
    let other_key = url.replace(".png?", "x.png?");
    assert_eq!(put(&app, &other_key, "image/png", PNG.to_vec()).await, 403);
    assert_eq!(put(&app, &url, "image/jpeg", PNG.to_vec()).await, 403);
    assert_eq!(put(&app, &url, "text/html", PNG.to_vec()).await, 403);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 403);
    let unsigned = url.split('?').next().unwrap().to_owned();
    assert_eq!(put(&app, &unsigned, "image/png", PNG.to_vec()).await, 403);
    assert!(files_under(&store.objects()).is_empty(), "nothing stored");

    // Oversize: refused as it arrives, whatever the backend.
    let status = put(&app, &url, "image/png", [PNG, &[0u8; 2000]].concat()).await;
    assert_eq!(status, 413);
    assert!(files_under(&store.objects()).is_empty(), "nothing stored");

    // Expired: a URL that worked, an instant too late.
    let ticket = upload_url(&app, &t, thread, "image/png").await;
    let url = ticket["uploadUrl"].as_str().unwrap().to_owned();
    assert_eq!(put(&app, &url, "image/png", PNG.to_vec()).await, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(put(&app, &url, "image/png", PNG.to_vec()).await, 403);
}

/// What only the service's own `/media/…` routes must do: stop an oversize upload while
/// it streams, and serve no file outside `chats/{thread}/`, however the key is spelled.
#[tokio::test(flavor = "multi_thread")]
async fn the_local_gateway_streams_limits_and_refuses_traversal() {
    let store = Store::files();
    let dir = store.objects();
    let app = spawn(&store, &[("CHAT_MAX_UPLOAD_BYTES", "1000")]).await;
    let thread = app.thread_for(1, 7).await;
    let ticket = upload_url(&app, &token(7, "client"), thread, "image/png").await;
    let url = ticket["uploadUrl"].as_str().unwrap();

    let chunks = futures::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0x89u8; 400]))),
    );
    let streamed = app
        .client
        .put(url)
        .header("Content-Type", "image/png")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413, "refused while streaming");
    assert!(files_under(&dir).is_empty(), "nothing stored");

    // Traversal forms of the key reach no file, even correctly signed (as with a leaked
    // signing secret): only plain keys under chats/{thread}/ are served, opened.
    std::fs::write(dir.join("secret.txt"), b"outside").unwrap();
    let ticket = upload_url(&app, &token(7, "client"), thread, "image/png").await;
    assert_eq!(upload(&app, &ticket, PNG).await, 200);
    let key = ticket["mediaPath"].as_str().unwrap().to_owned();
    std::fs::create_dir_all(dir.join(format!("chats/{thread}"))).unwrap();
    std::fs::write(dir.join(format!("chats/{thread}/plain.png")), PNG).unwrap();
    let signer = chat_storage::signing::UrlSigner::new(SECRET.as_bytes(), &app.url(""));
    let fetch = |key: &str| {
        let probe = signer.sign("GET", key, Duration::from_secs(60), "");
        let client = app.client.clone();
        async move { client.get(probe).send().await.unwrap() }
    };
    let control = fetch(&key).await;
    assert_eq!(control.status(), 200, "the control is served");
    assert_eq!(control.bytes().await.unwrap().as_ref(), PNG);
    // A parameter named twice is refused whichever copy is the good one: a signed URL
    // means exactly what was signed.
    let good = signer.sign("GET", &key, Duration::from_secs(60), "");
    let (path, query) = good.split_once('?').unwrap();
    let (expires, sig) = query.split_once('&').unwrap();
    let bad_sig = format!("sig={}", "0".repeat(64));
    for doubled in [
        format!("{path}?{expires}&{bad_sig}&{sig}"),
        format!("{path}?{expires}&{sig}&{bad_sig}"),
        format!("{path}?{expires}&{sig}&{sig}"),
        format!("{path}?expires=1&{expires}&{sig}"),
        format!("{path}?{expires}&{sig}&expires=99999999999"),
    ] {
        let status = app.client.get(&doubled).send().await.unwrap().status();
        assert_eq!(status, 403, "{doubled}");
    }
    // A file put there in the clear by anyone but the service is no image of the
    // thread's: it does not open, and is never served.
    let planted = fetch(&format!("chats/{thread}/plain.png")).await;
    assert!(planted.status().is_client_error() || planted.status().is_server_error());
    assert!(!planted.bytes().await.unwrap().starts_with(b"\x89PNG"));
    for key in [
        "../secret.txt".to_owned(),
        "%2e%2e/secret.txt".to_owned(),
        format!("chats/{thread}/../../secret.txt"),
        format!("chats/{thread}/%2E%2E/%2E%2E/secret.txt"),
        format!("chats/{thread}/..%2f..%2fsecret.txt"),
        format!("chats/{thread}/\\..\\..\\secret.txt"),
        "secret.txt".to_owned(),
        format!("chats/2/../{thread}/plain.png"),
    ] {
        let got = fetch(&key).await;
        let status = got.status();
        let body = got.bytes().await.unwrap();
        assert!(status == 403 || status == 404, "{key}: {status}");
        assert!(!body.windows(7).any(|w| w == b"outside"), "{key}");
    }
}

on_each_backend!(images_are_judged_by_their_bytes);
async fn images_are_judged_by_their_bytes(store: Store) {
    let app = spawn(&store, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");

    // Not in the allow-list, or not an image type at all: 422 on contentType.
    for bad in [
        json!({"contentType": "image/gif"}),
        json!({"contentType": "text/html"}),
        json!({}),
        json!({"contentType": 5}),
    ] {
        let r = app
            .client
            .post(app.url(&format!("/api/chat/threads/{thread}/media")))
            .bearer_auth(&t)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_invalid(r, "contentType").await;
    }

    // HTML declared as PNG, a PNG declared as JPEG, an empty file, a PNG whose header
    // claims 60,000 × 60,000 pixels (a decompression bomb), a JPEG cut short: refused
    // as they are uploaded (a field error naming mediaPath), nothing stored, and a
    // post naming them is refused too.
    let mut truncated = jpeg();
    truncated.truncate(truncated.len() / 2);
    for (declared, bytes) in [
        (
            "image/png",
            b"<html><script>alert(1)</script></html>".to_vec(),
        ),
        ("image/jpeg", PNG.to_vec()),
        ("image/png", Vec::new()),
        ("image/png", png_bomb()),
        ("image/jpeg", truncated),
    ] {
        let ticket = upload_url(&app, &t, thread, declared).await;
        let answer = app
            .client
            .put(ticket["uploadUrl"].as_str().unwrap())
            .header("Content-Type", declared)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_invalid(answer, "mediaPath").await;
        let path = ticket["mediaPath"].as_str().unwrap();
        assert_invalid(post_image(&app, &t, thread, path).await, "mediaPath").await;
    }
    assert!(files_under(&store.objects()).is_empty(), "nothing stored");
    // The real thing passes.
    let ticket = upload_url(&app, &t, thread, "image/jpeg").await;
    assert_eq!(upload(&app, &ticket, &jpeg()).await, 200);
    let path = ticket["mediaPath"].as_str().unwrap();
    json_of(post_image(&app, &t, thread, path).await, 200).await;
    // A path never uploaded, and traversal tricks in mediaPath.
    let missing = format!("chats/{thread}/never.png");
    assert_invalid(post_image(&app, &t, thread, &missing).await, "mediaPath").await;
    for trick in [
        format!("chats/{thread}/../{thread}/x.png"),
        format!("chats/{thread}/%2e%2e/x.png"),
        format!("chats/{thread}/\u{200b}x.png"),
        format!("/chats/{thread}/x.png"),
    ] {
        assert_invalid(post_image(&app, &t, thread, &trick).await, "mediaPath").await;
    }
}

on_each_backend!(another_threads_participant_gets_nothing);
async fn another_threads_participant_gets_nothing(store: Store) {
    let app = spawn(&store, &[]).await;
    let mine = app.thread_for(1, 7).await;
    let theirs = app.thread_for(2, 8).await;
    let (me, them) = (token(7, "client"), token(8, "client"));

    let r = app
        .client
        .post(app.url(&format!("/api/chat/threads/{mine}/media")))
        .bearer_auth(&them)
        .json(&json!({"contentType": "image/png"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;

    // Their upload, posted into my thread: another thread's prefix is refused.
    let ticket = upload_url(&app, &them, theirs, "image/png").await;
    assert_eq!(upload(&app, &ticket, PNG).await, 200);
    let their_path = ticket["mediaPath"].as_str().unwrap();
    assert_invalid(post_image(&app, &me, mine, their_path).await, "mediaPath").await;
    assert_error(
        post_image(&app, &me, theirs, their_path).await,
        403,
        "forbidden",
    )
    .await;
}

on_each_backend!(the_purge_deletes_the_threads_media_and_nothing_else);
async fn the_purge_deletes_the_threads_media_and_nothing_else(store: Store) {
    let app = spawn(&store, &[]).await;
    let closing = app.thread_for(1, 7).await;
    let staying = app.thread_for(2, 7).await;
    let t = token(7, "client");
    for thread in [closing, closing, staying] {
        upload_and_post(&app, &t, thread, "image/png", PNG).await;
    }
    // Each image, and its thumbnail.
    assert_eq!(files_under(&store.objects()).len(), 6);

    json_of(app.close(&admin(), closing).await, 200).await;
    let mut left = Vec::new();
    for _ in 0..50 {
        left = files_under(&store.objects());
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left
        .iter()
        .all(|f| f.starts_with(&format!("chats/{staying}/"))));
    let closed = app.all_messages(&admin(), closing).await;
    assert!(closed
        .iter()
        .all(|m| m["media_url"].is_null() && m["redacted"] == true));
}

on_each_backend!(keys_and_signed_urls_never_reach_the_log);
async fn keys_and_signed_urls_never_reach_the_log(store: Store) {
    // Debug level everywhere, the object store's HTTP client included.
    let vars = store.vars();
    let mut vars = borrowed(&vars);
    vars.push(("RUST_LOG", "debug"));
    let server = ServerProcess::start(&vars);
    let api = server.api();
    let thread = open_thread_over_http(&api.client, &api.base, 3).await;
    let (path, upload_url) = upload_png(&api.client, &api.base, thread, b"").await;
    let listed = api.list(&token(7, "client"), thread, "").await;
    let download_url = json_of(listed, 200).await["messages"][0]["media_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let downloaded = api.client.get(&download_url).send().await.unwrap();
    assert_eq!(downloaded.bytes().await.unwrap().as_ref(), PNG);
    // Malformed queries on the gateway's routes: refused, and the key in no log line
    // (actix's query extractor would log the request path).
    for query in [
        "",
        "?expires=-1",
        "?expires=1&sig=",
        "?sig=zz",
        "?expires=x&sig=y",
    ] {
        let refused = 403;
        let probe = format!("{}/media/{path}{query}", api.base);
        assert_eq!(
            api.client.get(&probe).send().await.unwrap().status(),
            refused
        );
        let put = api
            .client
            .put(&probe)
            .header("Content-Type", "image/png")
            .body(PNG);
        assert_eq!(put.send().await.unwrap().status(), refused);
    }
    assert_eq!(api.close(&admin(), thread).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the purge job log
    let log = server.stop();

    assert!(log.contains("job finished"), "the log is captured:\n{log}");
    // The random part of the key, and every signature: in no line of the log.
    let name = path.rsplit('/').next().unwrap().trim_end_matches(".png");
    assert!(!log.contains(name), "the object key in the log:\n{log}");
    for url in [&upload_url, &download_url] {
        let sig = &url[signature_at(url)..];
        let sig = sig.split('&').next().unwrap();
        assert!(sig.len() >= 32, "{sig}");
        assert!(!log.contains(sig), "a URL signature in the log:\n{log}");
    }
}

on_each_backend!(an_upload_url_writes_once_and_a_swap_is_never_served);
async fn an_upload_url_writes_once_and_a_swap_is_never_served(store: Store) {
    let app = spawn(&store, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let ticket = upload_and_post(&app, &t, thread, "image/png", PNG).await;
    // The same URL again, with other bytes, an image or not: refused.
    let html = b"<html><script>alert(1)</script></html>";
    for bytes in [&html[..], &jpeg()] {
        assert_eq!(upload(&app, &ticket, bytes).await, 403, "a second write");
    }
    // The recipient gets the bytes that were checked.
    assert_eq!(
        served(&app, thread).await,
        [("image/png".to_owned(), PNG.to_vec())]
    );
    let stored: Vec<Vec<u8>> = files_under(&store.objects())
        .iter()
        .map(|f| std::fs::read(store.objects().join(f)).unwrap())
        .collect();
    assert!(stored.iter().all(|bytes| !bytes.starts_with(b"<html>")));
}

on_each_backend!(an_upload_after_the_close_is_refused);
async fn an_upload_after_the_close_is_refused(store: Store) {
    let app = spawn(&store, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let ticket = upload_url(&app, &token(7, "client"), thread, "image/png").await;
    json_of(app.close(&admin(), thread).await, 200).await;
    // The service asks whether the thread is still open before it takes any byte.
    assert_eq!(upload(&app, &ticket, PNG).await, 403);
    let prefix = format!("chats/{thread}/");
    let left = files_under(&store.objects())
        .into_iter()
        .filter(|f| f.starts_with(&prefix))
        .count();
    assert_eq!(left, 0, "nothing of the closed thread stays");
}

on_each_backend!(served_images_carry_no_metadata_and_keep_their_pixels);
async fn served_images_carry_no_metadata_and_keep_their_pixels(store: Store) {
    use img_parts::{ImageEXIF, ImageICC};
    let app = spawn(&store, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let canary = format!("HOME-AT-40.7128N-{}", now_secs());

    // A photo as a phone takes it: EXIF with a GPS position, and a comment.
    let mut photo = img_parts::jpeg::Jpeg::from_bytes(jpeg().into()).unwrap();
    photo.set_exif(Some(exif_with_gps(&canary).into()));
    photo.segments_mut().insert(
        1,
        img_parts::jpeg::JpegSegment::new_with_contents(
            img_parts::jpeg::markers::COM,
            canary.clone().into_bytes().into(),
        ),
    );
    let photo = photo.encoder().bytes().to_vec();
    // A PNG with an eXIf and a tEXt chunk.
    let mut drawing = img_parts::png::Png::from_bytes(PNG.to_vec().into()).unwrap();
    drawing.set_exif(Some(exif_with_gps(&canary).into()));
    let at_end = drawing.chunks().len() - 1;
    drawing.chunks_mut().insert(
        at_end,
        img_parts::png::PngChunk::new(*b"tEXt", format!("Comment\0{canary}").into_bytes().into()),
    );
    let drawing = drawing.encoder().bytes().to_vec();
    // A WebP with EXIF and XMP chunks.
    let webp = {
        let pixels = image::RgbaImage::from_fn(4, 4, |x, y| {
            image::Rgba([x as u8 * 60, y as u8 * 60, 9, 255])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        pixels.write_to(&mut out, image::ImageFormat::WebP).unwrap();
        let mut webp = img_parts::webp::WebP::from_bytes(out.into_inner().into()).unwrap();
        webp.set_exif(Some(exif_with_gps(&canary).into()));
        webp.chunks_mut().push(img_parts::riff::RiffChunk::new(
            *b"XMP ",
            img_parts::riff::RiffContent::Data(
                format!("<x:xmpmeta>{canary}</x:xmpmeta>")
                    .into_bytes()
                    .into(),
            ),
        ));
        webp.encoder().bytes().to_vec()
    };
    for bytes in [&photo, &drawing, &webp] {
        let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
        assert!(found, "the canary is in what is uploaded");
    }

    for (mime, original) in [
        ("image/jpeg", &photo),
        ("image/png", &drawing),
        ("image/webp", &webp),
    ] {
        upload_and_post(&app, &t, thread, mime, original).await;
    }
    let served = served(&app, thread).await;
    assert_eq!(served.len(), 3);
    for ((mime, bytes), original) in served.iter().zip([&photo, &drawing, &webp]) {
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{mime}: the canary is served"
        );
        assert!(
            !bytes.windows(4).any(|w| w == b"Exif"),
            "{mime}: EXIF served"
        );
        assert_eq!(pixels(bytes), pixels(original), "{mime}: the same pixels");
        match mime.as_str() {
            "image/jpeg" => {
                let jpeg = img_parts::jpeg::Jpeg::from_bytes(bytes.clone().into()).unwrap();
                assert!(jpeg.exif().is_none() && jpeg.icc_profile().is_none());
                assert!(jpeg
                    .segments()
                    .iter()
                    .all(|s| s.marker() != img_parts::jpeg::markers::COM));
            }
            "image/png" => {
                let png = img_parts::png::Png::from_bytes(bytes.clone().into()).unwrap();
                assert!(png
                    .chunks()
                    .iter()
                    .all(|c| !matches!(&c.kind(), b"eXIf" | b"tEXt")));
            }
            "image/webp" => {
                let webp = img_parts::webp::WebP::from_bytes(bytes.clone().into()).unwrap();
                assert!(!webp.has_chunk(*b"EXIF") && !webp.has_chunk(*b"XMP "));
            }
            other => panic!("served as {other}"),
        }
    }
}

/// A photo's pixels and its metadata each hold a unique string: neither is found in
/// any object the store holds, while the served image still shows the pixels (and
/// carries no metadata). On the in-memory backend too, looked at through the port.
async fn canaries_are_in_no_object(store: Option<&Store>) {
    let vars = store.map(Store::vars).unwrap_or_default();
    let app = TestApp::spawn_with(&borrowed(&vars)).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let stamp = now_secs();
    let in_pixels = format!("PIXELS-{stamp}-wound-on-the-left-ankle");
    let in_metadata = format!("METADATA-{stamp}-42-Elm-Street");
    let photo = png_with_pixel_row(in_pixels.as_bytes(), &in_metadata);
    assert!(contains(&photo, in_pixels.as_bytes()) && contains(&photo, in_metadata.as_bytes()));

    let ticket = upload_and_post(&app, &t, thread, "image/png", &photo).await;
    let path = ticket["mediaPath"].as_str().unwrap();
    let served = served(&app, thread).await;
    let (mime, bytes) = &served[0];
    assert_eq!(mime, "image/png");
    assert_eq!(
        pixels(bytes)
            .as_raw()
            .iter()
            .step_by(4)
            .copied()
            .collect::<Vec<u8>>(),
        in_pixels.as_bytes(),
        "the served image shows the pixels"
    );
    assert!(
        !contains(bytes, in_metadata.as_bytes()),
        "no metadata served"
    );

    // Every object the store holds, as it holds it.
    let held: Vec<Vec<u8>> = match store {
        Some(store) => files_under(&store.objects())
            .iter()
            .map(|f| std::fs::read(store.objects().join(f)).unwrap())
            .collect(),
        None => {
            let media = app.ports.media.clone().unwrap();
            let thread_id = chat_core::ThreadId::new(thread).unwrap();
            let image = chat_core::MediaPath::parse(path, thread_id).unwrap();
            let thumbnail = image.thumbnail(thread_id).unwrap();
            let mut held = Vec::new();
            for key in [image, thumbnail] {
                held.push(media.get_sealed(&key).await.unwrap().unwrap().into_bytes());
            }
            held
        }
    };
    assert_eq!(held.len(), 2, "the image and its thumbnail");
    for object in &held {
        assert!(object.len() > 28, "an object was read");
        for canary in [&in_pixels, &in_metadata] {
            assert!(
                !contains(object, canary.as_bytes()),
                "{canary} in an object"
            );
        }
    }
}

on_each_backend!(canaries_in_pixels_and_metadata_are_in_no_stored_object);
async fn canaries_in_pixels_and_metadata_are_in_no_stored_object(store: Store) {
    canaries_are_in_no_object(Some(&store)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn canaries_in_pixels_and_metadata_are_in_no_object_held_in_memory() {
    canaries_are_in_no_object(None).await;
}

on_each_backend!(a_sealed_image_copied_elsewhere_does_not_open);
/// A sealed image opens only where it was written: copied over another image's key in
/// its thread, or into another thread, it does not open (the key and the thread are in
/// its associated data), so nothing is served from the copy.
async fn a_sealed_image_copied_elsewhere_does_not_open(store: Store) {
    let app = spawn(&store, &[]).await;
    let (mine, other) = (app.thread_for(1, 7).await, app.thread_for(2, 7).await);
    let t = token(7, "client");
    let first = upload_and_post(&app, &t, mine, "image/png", PNG).await;
    let second = upload_and_post(
        &app,
        &t,
        mine,
        "image/png",
        &png_with_pixel_row(b"second", ""),
    )
    .await;
    let elsewhere = upload_and_post(
        &app,
        &t,
        other,
        "image/png",
        &png_with_pixel_row(b"other", ""),
    )
    .await;
    let dir = store.objects();
    let key = |ticket: &serde_json::Value| ticket["mediaPath"].as_str().unwrap().to_owned();
    let original = std::fs::read(dir.join(key(&first))).unwrap();
    for target in [key(&second), key(&elsewhere)] {
        std::fs::write(dir.join(&target), &original).unwrap();
    }
    for (thread, target) in [(mine, key(&second)), (other, key(&elsewhere))] {
        let listed = app.all_messages(&t, thread).await;
        let url = listed
            .iter()
            .filter_map(|m| m["media_url"].as_str())
            .find(|url| url.contains(&format!("/media/{target}?")))
            .unwrap();
        let got = app.client.get(url).send().await.unwrap();
        let status = got.status().as_u16();
        let body = got.bytes().await.unwrap();
        assert_ne!(status, 200, "the copy at {target} was opened");
        assert!(!contains(&body, b"\x89PNG"));
    }
    // The original still opens where it was written.
    let listed = app.all_messages(&t, mine).await;
    let got = app
        .client
        .get(listed[0]["media_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), PNG);
}

on_each_backend!(a_retraction_deletes_every_object_of_the_image);
/// Retracting an image message deletes every object of its image: the image and its
/// thumbnail (SPEC §3.10); its URLs then serve nothing.
async fn a_retraction_deletes_every_object_of_the_image(store: Store) {
    let app = spawn(&store, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    upload_and_post(&app, &t, thread, "image/jpeg", &jpeg()).await;
    let listed = app.all_messages(&t, thread).await;
    let (id, urls) = (
        listed[0]["id"].as_i64().unwrap(),
        [
            listed[0]["media_url"].as_str().unwrap().to_owned(),
            listed[0]["thumb_url"].as_str().unwrap().to_owned(),
        ],
    );
    let prefix = format!("chats/{thread}/");
    let objects = || {
        files_under(&store.objects())
            .into_iter()
            .filter(|f| f.starts_with(&prefix))
            .count()
    };
    assert_eq!(objects(), 2);
    let retracted = app
        .client
        .delete(app.url(&format!("/api/chat/threads/{thread}/messages/{id}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    json_of(retracted, 200).await;
    assert_eq!(objects(), 0, "no object of the image is left");
    for url in urls {
        assert_eq!(app.client.get(&url).send().await.unwrap().status(), 404);
    }
}

/// The previous release kept each checked image in the clear under
/// `chats/{thread}/checked/`; the messages of open threads still name them. Such an
/// image is still served (it carries no metadata), and sealed in place as it is: the
/// store holds its plaintext no longer.
#[tokio::test(flavor = "multi_thread")]
async fn a_clear_image_left_by_the_previous_release_is_served_then_sealed() {
    let store = Store::files();
    let dir = store.objects();
    let app = spawn(&store, &[]).await;
    let thread = app.thread_for(1, 7).await;
    // The thread's key exists once it has a message.
    app.post_text(&token(7, "client"), thread, "hello").await;
    let key = format!("chats/{thread}/checked/legacy.png");
    std::fs::create_dir_all(dir.join(format!("chats/{thread}/checked"))).unwrap();
    std::fs::write(dir.join(&key), PNG).unwrap();
    let signer = chat_storage::signing::UrlSigner::new(SECRET.as_bytes(), &app.url(""));
    let url = signer.sign("GET", &key, Duration::from_secs(60), "");
    for _ in 0..2 {
        let got = app.client.get(&url).send().await.unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.headers()["content-type"], "image/png");
        assert_eq!(got.bytes().await.unwrap().as_ref(), PNG);
        let stored = std::fs::read(dir.join(&key)).unwrap();
        assert!(!contains(&stored, b"IDAT"), "sealed in place");
    }
}
