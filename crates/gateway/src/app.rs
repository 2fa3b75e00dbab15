//! The hyper service the server runs: `/v1/…` and `/apis/…` go straight to
//! the data plane, everything else (management API, problem pages, health)
//! to the management router.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;

use crate::activity::{Activity, Answer, TrackedBody};
use crate::http::AppState;

/// Everything the server answers.
#[derive(Clone)]
pub struct App {
    state: AppState,
    management: Router,
    /// What the connection this copy serves is doing; see [`activity`].
    activity: Option<Arc<Activity>>,
    /// The address of the client on that connection, for the call log
    /// (written once per connection, shared by its calls).
    peer: Option<Arc<str>>,
}

pub fn app(state: AppState) -> App {
    App {
        management: crate::http::router(state.clone()),
        state,
        activity: None,
        peer: None,
    }
}

impl App {
    /// A copy for one connection, with what it does counted.
    pub fn for_connection(&self, peer: std::net::IpAddr) -> (App, Arc<Activity>) {
        let activity = Arc::new(Activity::default());
        let mut app = self.clone();
        app.activity = Some(activity.clone());
        app.peer = Some(peer.to_string().into());
        (app, activity)
    }
}

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for App {
    type Response = Answer;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Answer, Self::Error>> + Send>>;

    fn call(&self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        let in_flight = self.activity.as_ref().map(Activity::begin);
        if req.uri().path().starts_with("/v1/") || req.uri().path().starts_with("/apis/") {
            // The data plane's future goes straight into the box: wrapping it
            // in another async block would copy its (large) state once more.
            Box::pin(crate::dataplane::serve(
                self.state.data.clone(),
                req,
                in_flight,
                self.peer.clone(),
            ))
        } else {
            let answer = tower::Service::call(&mut self.management.clone(), req.map(Body::new));
            Box::pin(async move { Ok(answer.await?.map(|b| TrackedBody::new(b, in_flight))) })
        }
    }
}
