//! Streaming answers: a prepared list of server-sent events, played with a
//! pace, optionally broken off, and observed by a [`StreamGuard`].

use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use crate::stats::{Stats, StreamEnd, StreamGuard};

/// Splits `text` into its words, each keeping the whitespace that follows it,
/// so that the pieces concatenate back to `text` exactly.
pub(crate) fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut after_space = false;
    for (at, c) in text.char_indices() {
        if after_space && !c.is_whitespace() {
            pieces.push(&text[start..at]);
            start = at;
        }
        after_space = c.is_whitespace();
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// How the stream ends.
pub(crate) enum Ending {
    /// After every event.
    Complete,
    /// After this many events, with a body error instead of an end, so the
    /// client sees a broken stream (hyper aborts the connection).
    CutAfter(usize),
}

struct Playing {
    events: std::vec::IntoIter<Event>,
    cut: bool,
    pace: Duration,
    sent: usize,
    guard: StreamGuard,
}

/// Answers `text/event-stream` with `events`, `pace` apart.
pub(crate) fn respond(
    mut events: Vec<Event>,
    ending: Ending,
    pace: Duration,
    stats: Arc<Stats>,
) -> Response {
    let cut = match ending {
        Ending::Complete => false,
        Ending::CutAfter(count) => {
            events.truncate(count);
            true
        }
    };
    let playing = Playing {
        events: events.into_iter(),
        cut,
        pace,
        sent: 0,
        guard: StreamGuard::start(stats),
    };
    // The state is `None` once the stream is over; the guard, inside it, is
    // dropped with the body, which counts an abort if the end was not reached.
    let body = stream::unfold(Some(playing), |state| async move {
        let mut playing = state?;
        let Some(event) = playing.events.next() else {
            if playing.cut {
                playing.guard.end(StreamEnd::Cut);
                // hyper drops unflushed bytes when a body fails, and flushes
                // only once the body is pending: yield once so the events
                // already sent reach the client before the break.
                tokio::task::yield_now().await;
                let error = std::io::Error::other("sim-cut: stream broken off by the simulator");
                return Some((Err(error), None));
            }
            playing.guard.end(StreamEnd::Completed);
            return None;
        };
        // No timer without a pace: even a zero sleep waits for the timer
        // wheel's next millisecond tick.
        if playing.sent > 0 && !playing.pace.is_zero() {
            tokio::time::sleep(playing.pace).await;
        }
        playing.sent += 1;
        Some((Ok(event), Some(playing)))
    });
    Sse::new(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::word_pieces;

    #[test]
    fn pieces_concatenate_to_the_text() {
        assert_eq!(word_pieces("echo: a  b\nc"), ["echo: ", "a  ", "b\n", "c"]);
        assert_eq!(word_pieces("echo: "), ["echo: "]);
        assert_eq!(word_pieces(""), Vec::<&str>::new());
    }
}
