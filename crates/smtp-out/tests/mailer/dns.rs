//! A real DNS server for the tests: answers MX and A queries over UDP on 127.0.0.1 from
//! a small zone, built on the same hickory-proto messages the resolver parses.
//! Names not in the zone get NXDOMAIN; a name can also be set to SERVFAIL or silence.
//! Every question is logged, so a test can count what a delivery asked.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::MX;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What the server knows about one name.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub mx: Vec<(u16, String)>,
    pub a: Vec<Ipv4Addr>,
    pub behaviour: Behaviour,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Behaviour {
    #[default]
    Answer,
    ServFail,
    Silent,
}

#[derive(Debug, Default, Clone)]
pub struct Zone(HashMap<String, Entry>);

impl Zone {
    pub fn mx(mut self, name: &str, preference: u16, exchange: &str) -> Self {
        self.entry(name).mx.push((preference, exchange.to_owned()));
        self
    }

    pub fn a(mut self, name: &str, ip: Ipv4Addr) -> Self {
        self.entry(name).a.push(ip);
        self
    }

    /// The name exists, with no records of its own.
    pub fn empty(mut self, name: &str) -> Self {
        self.entry(name);
        self
    }

    pub fn behave(mut self, name: &str, behaviour: Behaviour) -> Self {
        self.entry(name).behaviour = behaviour;
        self
    }

    fn entry(&mut self, name: &str) -> &mut Entry {
        self.0.entry(name.to_ascii_lowercase()).or_default()
    }
}

pub struct DnsServer {
    pub addr: SocketAddr,
    /// (name without the final dot, record type) of every question received.
    questions: Arc<Mutex<Vec<(String, RecordType)>>>,
    task: JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsServer {
    pub async fn start(zone: Zone) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a UDP port");
        let addr = socket.local_addr().expect("a bound address");
        let zone = Arc::new(zone);
        let questions: Arc<Mutex<Vec<(String, RecordType)>>> = Arc::default();
        let log = Arc::clone(&questions);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((len, peer)) = socket.recv_from(&mut buf).await {
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if let Ok(mut log) = log.lock() {
                    for query in &request.queries {
                        let name = query.name().to_ascii().trim_end_matches('.').to_owned();
                        log.push((name, query.query_type()));
                    }
                }
                if let Some(response) = answer(&zone, &request)
                    && let Ok(bytes) = response.to_vec()
                {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        DnsServer {
            addr,
            questions,
            task,
        }
    }

    /// The names asked about, each once, in the order first asked.
    pub fn names_asked(&self) -> Vec<String> {
        let questions = self.questions.lock().map(|q| q.clone()).unwrap_or_default();
        let mut names: Vec<String> = Vec::new();
        for (name, _) in questions {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// How many questions arrived (retries included).
    pub fn questions(&self) -> usize {
        self.questions.lock().map(|q| q.len()).unwrap_or_default()
    }
}

fn answer(zone: &Zone, request: &Message) -> Option<Message> {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    for query in &request.queries {
        response.add_query(query.clone());
        let name = query
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let Some(entry) = zone.0.get(&name) else {
            response.metadata.response_code = ResponseCode::NXDomain;
            continue;
        };
        match entry.behaviour {
            Behaviour::Silent => return None,
            Behaviour::ServFail => {
                response.metadata.response_code = ResponseCode::ServFail;
                continue;
            }
            Behaviour::Answer => {}
        }
        let data: Vec<RData> = match query.query_type() {
            RecordType::MX => entry
                .mx
                .iter()
                .filter_map(|(preference, exchange)| {
                    let exchange = Name::from_ascii(exchange).ok()?;
                    Some(RData::MX(MX::new(*preference, exchange)))
                })
                .collect(),
            RecordType::A => entry.a.iter().map(|ip| RData::from(*ip)).collect(),
            _ => Vec::new(),
        };
        for rdata in data {
            response.add_answer(Record::from_rdata(query.name().clone(), 60, rdata));
        }
    }
    Some(response)
}
