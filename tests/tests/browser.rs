//! The browser harness works: Debian's headless Chromium, driven over WebDriver, plays
//! the sample H.264 MP4 (the hub serves clips as the original MP4 bytes, so the
//! camera room's playback depends on this).

use std::time::Duration;

use vigil_tests::browser::Browser;
use vigil_tests::sample;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_plays_the_sample_clip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(sample("vtest.mp4")?, dir.path().join("clip.mp4"))?;
    let page = dir.path().join("page.html");
    std::fs::write(
        &page,
        "<!doctype html><title>clip</title>\
         <video id=\"clip\" src=\"clip.mp4\" muted autoplay playsinline></video>",
    )?;
    let browser = Browser::start().await?;
    browser
        .client
        .goto(&format!("file://{}", page.display()))
        .await?;
    browser
        .wait_js(
            Duration::from_secs(20),
            "the video to decode a frame",
            "return document.getElementById('clip').readyState >= 2",
        )
        .await?;
    browser
        .wait_js(
            Duration::from_secs(20),
            "playback to advance",
            "return document.getElementById('clip').currentTime > 0.5",
        )
        .await?;
    let size = browser
        .eval("const v = document.getElementById('clip'); return [v.videoWidth, v.videoHeight]")
        .await?;
    assert_eq!(size, serde_json::json!([768, 576]));
    let shot = browser.screenshot("harness-video").await?;
    assert!(
        std::fs::metadata(&shot)?.len() > 1000,
        "screenshot is empty"
    );
    browser.close().await?;
    Ok(())
}
