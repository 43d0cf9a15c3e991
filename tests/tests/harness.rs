//! The harness's own pieces work, checked against independent tools.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use vigil_tests::h264::{access_units_of_annexb, access_units_of_mp4, align_from_first};
use vigil_tests::oracle::probe_packets;
use vigil_tests::{sample, JunkServer, Mosquitto};

/// The MP4 reader agrees with ffprobe on sample count, sizes, key frames and timestamps.
#[test]
fn mp4_reader_matches_ffprobe() {
    for name in ["vtest.mp4", "vtest_bframes.mp4"] {
        let file = sample(name).expect("sample footage");
        let (track, aus) = access_units_of_mp4(&file).expect("read sample");
        let packets = probe_packets(
            file.to_str().expect("utf-8 path"),
            &[],
            Duration::from_secs(20),
        )
        .expect("ffprobe packets");
        assert_eq!(track.samples.len(), packets.len(), "{name}: sample count");
        assert_eq!(aus.len(), packets.len(), "{name}: access units");
        assert_eq!((track.width, track.height), (768, 576), "{name}: size");
        for (i, (s, p)) in track.samples.iter().zip(&packets).enumerate() {
            assert_eq!(s.data.len() as u64, p.size, "{name}: sample {i} size");
            assert_eq!(s.sync, p.key, "{name}: sample {i} key flag");
            let pts = s.pts as f64 / f64::from(track.timescale);
            let probe_pts = p.pts.expect("pts");
            // ffprobe shifts by the edit list; compare relative to the first sample.
            let first = track.samples[0].pts as f64 / f64::from(track.timescale);
            let probe_first = packets[0].pts.expect("pts");
            assert!(
                ((pts - first) - (probe_pts - probe_first)).abs() < 0.002,
                "{name}: sample {i} pts {pts} vs ffprobe {probe_pts}"
            );
        }
        assert!(aus[0].is_idr(), "{name}: first access unit is an IDR");
        assert!(
            (track.frame_duration() - 0.1).abs() < 1e-3,
            "{name}: 10 fps"
        );
    }
}

/// Grouping an Annex B stream (no boundaries) finds the file's access units again.
#[test]
fn annexb_grouping_matches_mp4_samples() {
    let file = sample("vtest_bframes.mp4").expect("sample footage");
    let (track, aus) = access_units_of_mp4(&file).expect("read sample");
    let mut stream = Vec::new();
    for ps in &track.parameter_sets {
        stream.extend_from_slice(&[0, 0, 0, 1]);
        stream.extend_from_slice(ps);
    }
    for s in &track.samples[..100] {
        for nal in
            vigil_tests::h264::split_length_prefixed(&s.data, track.length_size).expect("nals")
        {
            stream.extend_from_slice(&[0, 0, 1]);
            stream.extend_from_slice(nal);
        }
    }
    let grouped = access_units_of_annexb(&stream);
    assert_eq!(grouped.len(), 100);
    let a = align_from_first(&aus, &grouped).expect("same units");
    assert_eq!((a.source_start, a.matched), (0, 100));
}

/// The private broker accepts an MQTT CONNECT (CONNACK, return code 0).
#[test]
fn mosquitto_accepts_mqtt_connect() {
    let broker = Mosquitto::start().expect("start mosquitto");
    let mut conn = TcpStream::connect(("127.0.0.1", broker.port())).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // CONNECT, MQTT 3.1.1, clean session, keepalive 10 s, client id "t".
    let connect = [
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 1, b't',
    ];
    conn.write_all(&connect).expect("send CONNECT");
    let mut connack = [0u8; 4];
    conn.read_exact(&mut connack).expect("CONNACK");
    assert_eq!(connack, [0x20, 2, 0, 0], "stderr: {}", broker.stderr());
}

/// The junk server accepts TCP and answers with non-RTSP bytes.
#[test]
fn junk_server_sends_junk() {
    let junk = JunkServer::start().expect("junk server");
    let mut conn = TcpStream::connect(("127.0.0.1", junk.port())).expect("connect");
    conn.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .expect("write");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    let n = conn.read(&mut buf).expect("read");
    assert!(n > 0 && !buf.starts_with(b"RTSP/"));
    assert_eq!(junk.connections(), 1);
}
