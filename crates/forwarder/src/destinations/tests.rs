use super::destination::REMEMBER_QUIET;
use super::*;

fn deliver_once(destinations: &Arc<Destinations<()>>, name: &str) {
    let Admission::Go(slot, ()) = destinations.admit(name, ()) else {
        panic!("{name} has room");
    };
    slot.finish(Contact::Delivered, "");
}

#[tokio::test(start_paused = true)]
async fn a_grown_window_is_kept_for_a_while_then_swept_out() {
    let destinations = Arc::new(Destinations::new(DestinationLimits::default()));
    // Mail to many domains, each growing its window by one delivery.
    for n in 0..100 {
        deliver_once(&destinations, &format!("d{n}.test"));
    }
    assert_eq!(
        destinations.known().len(),
        100,
        "grown windows are remembered"
    );
    assert_eq!(destinations.known()["d0.test"].window, 6);

    tokio::time::advance(REMEMBER_QUIET + Duration::from_secs(1)).await;
    // A busy destination keeps going meanwhile; the sweep comes with admissions.
    for _ in 0..SWEEP_EVERY {
        deliver_once(&destinations, "busy.test");
    }
    let known = destinations.known();
    assert_eq!(
        known.len(),
        1,
        "quiet ones are forgotten: {:?}",
        known.keys()
    );
    assert!(known.contains_key("busy.test"));
}

/// Destinations that die at their first failure.
fn fragile() -> Arc<Destinations<u32>> {
    Arc::new(Destinations::new(DestinationLimits {
        failed_cohort: 1,
        ..DestinationLimits::default()
    }))
}

fn kill(destinations: &Arc<Destinations<u32>>, name: &str) {
    let Admission::Go(slot, _) = destinations.admit(name, 0) else {
        panic!("{name} has room");
    };
    slot.finish(Contact::Unreachable, "connection refused");
    assert!(matches!(
        destinations.admit(name, 1),
        Admission::Dead { job: 1, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_learns_nothing_hands_the_probe_on() {
    let destinations = fragile();
    kill(&destinations, "x.test");
    tokio::time::advance(DestinationLimits::default().min_backoff).await;
    let Admission::Go(probe, 2) = destinations.admit("x.test", 2) else {
        panic!("the backoff is over: a probe");
    };
    assert!(matches!(destinations.admit("x.test", 3), Admission::Parked));
    // Its email could not be read, say: it ends without contact.
    drop(probe);
    let Taken::Admit(3) = destinations.take_parked("x.test") else {
        panic!("the parked job is handed on");
    };
    let Admission::Go(probe, 3) = destinations.admit("x.test", 3) else {
        panic!("the next attempt probes");
    };
    assert!(matches!(destinations.admit("x.test", 4), Admission::Parked));
    probe.finish(Contact::Delivered, "");
    let Taken::Go(ready) = destinations.take_parked("x.test") else {
        panic!("alive again: the parked job goes");
    };
    assert_eq!(ready.iter().map(|(_, job)| *job).collect::<Vec<_>>(), [4]);
}

#[tokio::test(start_paused = true)]
async fn a_dead_destination_that_gets_no_more_mail_is_forgotten() {
    let destinations = fragile();
    kill(&destinations, "gone.test");
    tokio::time::advance(
        DestinationLimits::default().min_backoff + REMEMBER_QUIET + Duration::from_secs(1),
    )
    .await;
    for _ in 0..SWEEP_EVERY {
        let Admission::Go(slot, _) = destinations.admit("busy.test", 0) else {
            panic!("busy.test has room");
        };
        slot.finish(Contact::Delivered, "");
    }
    assert!(!destinations.known().contains_key("gone.test"));
}
