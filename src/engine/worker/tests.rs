use super::*;

#[test]
fn a_request_meets_the_objectives_that_apply_to_it() {
    let ms = Duration::from_millis;
    let start = Instant::now();
    let slo = StreamSlo {
        ttft: Some(ms(100)),
        itl: Some(ms(10)),
        e2e: Some(ms(500)),
    };
    // First token at 80 ms, 31 more tokens over 310 ms: mean gap 10 ms,
    // however uneven the gaps were.
    let streamed = |first: u64, last: u64, tokens: u64| {
        Some(Streamed {
            first: Some(start + ms(first)),
            last: Some(start + ms(last)),
            tokens,
            seen: Default::default(),
        })
    };
    let done = start + ms(400);
    assert!(meets(&slo, start, done, Ok(()), streamed(80, 390, 32)));
    assert!(!meets(&slo, start, done, Ok(()), streamed(120, 390, 32)));
    assert!(!meets(&slo, start, done, Ok(()), streamed(80, 400, 32)));
    assert!(!meets(
        &slo,
        start,
        start + ms(600),
        Ok(()),
        streamed(80, 390, 32)
    ));
    let cut = Err(FailureKind::Io);
    assert!(!meets(&slo, start, done, cut, streamed(80, 390, 32)));
    // One token has no gap; no token misses the ttft objective.
    assert!(meets(&slo, start, done, Ok(()), streamed(80, 80, 1)));
    let nothing = Some(Streamed {
        first: None,
        last: None,
        tokens: 0,
        seen: Default::default(),
    });
    assert!(!meets(&slo, start, done, Ok(()), nothing));
    // A request that is not streamed answers to e2e only.
    assert!(meets(&slo, start, done, Ok(()), None));
    assert!(!meets(&slo, start, start + ms(501), Ok(()), None));
}

#[test]
fn early_deadline_is_rearmed_to_the_limit() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let mut armed = start + Duration::from_millis(30);
        let mut deadline = pin!(sleep_until(armed.into()));
        // Fires at 30 ms, is re-armed, returns at the limit.
        let limit = start + Duration::from_millis(120);
        wait_until(deadline.as_mut(), &mut armed, limit).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(120), "{took:?}");
        assert!(took < Duration::from_millis(300), "{took:?}");
        assert_eq!(armed, limit);
        // Armed at the limit: one wait. Already elapsed: no wait.
        let limit = Instant::now() + Duration::from_millis(40);
        deadline.as_mut().reset(limit.into());
        armed = limit;
        wait_until(deadline.as_mut(), &mut armed, limit).await;
        assert!(Instant::now() >= limit);
        let again = Instant::now();
        wait_until(deadline.as_mut(), &mut armed, limit).await;
        assert!(again.elapsed() < Duration::from_millis(20));
    });
}
