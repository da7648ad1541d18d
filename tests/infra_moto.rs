//! Infra and code cannot drift: `infra/template.yaml` is transformed offline (samtranslator)
//! and deployed into moto's CloudFormation (`infra/moto_deploy.py`); the receivers and the
//! fanout then run against the tables and queues the template itself created, with names and
//! attributes read from the stack. What moto ignores (TTL, PITR, architectures, the stream
//! mapping) is asserted on the transformed template.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use common::moto::Moto;
use serde_json::Value;
use wahooks::config::Config;
use wahooks::fanout::DEFAULT_QUEUES;
use wahooks::local::{apigw_request, LocalStack};
use wahooks::stream_driver::StreamDriver;
use wahooks::{Provider, Route};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `make test` (it creates .venv)",
        p.display()
    );
    p
}

/// Deploy the template into `moto`; the stack's outputs, resources and transformed template.
fn deploy(moto: &Moto) -> Value {
    let out = Command::new(python())
        .arg(root().join("infra/moto_deploy.py"))
        .args(["--endpoint", &moto.url(), "--stack", "wahooks-drift"])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the template deploys into moto: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn output(stack: &Value, key: &str) -> String {
    stack["outputs"][key]
        .as_str()
        .unwrap_or_else(|| panic!("output {key}"))
        .to_owned()
}

/// The (transformed) resources of a type, by logical id.
fn resources<'a>(stack: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    stack["template"]["Resources"]
        .as_object()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

#[tokio::test]
async fn receivers_and_fanout_run_on_what_the_template_creates() {
    let moto = Moto::start();
    let stack = deploy(&moto);
    let queues: Vec<(String, String)> = DEFAULT_QUEUES
        .iter()
        .map(|name| {
            let key = format!("{}{}QueueUrl", name[..1].to_uppercase(), &name[1..]);
            (name.to_string(), output(&stack, &key))
        })
        .collect();
    let config = Config {
        events_table: output(&stack, "EventsTableName"),
        endpoints_table: output(&stack, "EndpointsTableName"),
        retention_days: 30,
        queues,
        routes: String::new(),
        // The bucket and the parked queue the template made: the receivers and the fanout use them.
        body_bucket: Some(output(&stack, "BodyBucketName")),
        parked_url: Some(output(&stack, "ParkedRecordsQueueUrl")),
        // The key the template made: signing secrets are sealed under it.
        secrets_key: Some(output(&stack, "SecretsKeyArn")),
        // The timers queue the template made: the fanout tells it of inbound messages.
        timers_url: Some(output(&stack, "TimersQueueUrl")),
        media: Default::default(),
    };
    let local = LocalStack::connect(moto.sdk().await, config.clone())
        .await
        .expect("the code accepts the stack's queues");

    // The queues as the template made them: 1 MiB, FIFO where the code expects it, a DLQ each.
    for q in local.fanout.routing().queues() {
        assert_eq!(
            q.max_bytes,
            1024 * 1024,
            "{}: MaximumMessageSize read from the queue",
            q.name
        );
        assert_eq!(q.fifo, wahooks::schema::is_fifo(&q.name), "{}", q.name);
        let attrs = local
            .sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("attributes");
        let redrive = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
            .unwrap_or_else(|| panic!("{} has a redrive policy", q.name));
        assert!(redrive.contains("maxReceiveCount"), "{redrive}");
    }

    // The events table matches what the code (and `make run`) creates: keys, GSIs (and what
    // they project), stream.
    wahooks::schema::create_events_table(&local.dynamo, "events-from-code")
        .await
        .expect("table");
    let describe = |name: String| {
        let dynamo = local.dynamo.clone();
        async move {
            let t = dynamo.describe_table().table_name(name).send().await.expect("describe");
            let t = t.table().expect("table").clone();
            let mut gsis: Vec<String> = t
                .global_secondary_indexes()
                .iter()
                .map(|g| format!("{:?}:{:?}:{:?}", g.index_name(), g.key_schema(), g.projection()))
                .collect();
            gsis.sort();
            (
                format!("{:?}", t.key_schema()),
                gsis,
                t.stream_specification().map(|s| format!("{:?}", s.stream_view_type())),
            )
        }
    };
    assert_eq!(
        describe(config.events_table.clone()).await,
        describe("events-from-code".into()).await,
        "infra/template.yaml and shared/src/schema.rs define the same events table"
    );

    // A webhook per provider through the receivers, the stream through the fanout.
    let mut accepted = HashSet::new();
    let mut tokens = HashMap::new();
    for provider in Provider::ALL {
        let token = local.url_token_endpoint(provider).await.expect("endpoint");
        tokens.insert(provider, token.clone());
        for (name, body) in common::payloads(provider).into_iter().take(5) {
            let path = format!("/v1/hooks/{token}");
            let response = local
                .receiver
                .handle(Route::Any, apigw_request("POST", &path, "", &[], &body))
                .await;
            assert_eq!(response.status(), 200, "{provider}/{name}");
            let v: Value = serde_json::from_slice(response.body().as_ref()).expect("json");
            accepted.extend(
                v["accepted"]
                    .as_array()
                    .expect("accepted")
                    .iter()
                    .map(|x| x.as_str().expect("id").to_owned()),
            );
        }
    }
    // A signed delivery through an endpoint whose app secret is sealed under the template's key.
    let app = wahooks::endpoint::Auth::new(
        wahooks::endpoint::Scheme::HubSignature256,
        vec![wahooks::endpoint::Secret::new("drift-app-secret")],
        None,
    )
    .expect("auth");
    // (In the Meta endpoint's tenant: the fixture's instance is already that tenant's.)
    use wahooks::registry::EndpointRegistry;
    let meta = local
        .registry
        .lookup(&tokens[&Provider::Meta])
        .await
        .expect("lookup")
        .expect("exists");
    let token = wahooks::registry::new_token();
    let signed_endpoint = wahooks::endpoint::Endpoint {
        tenant: meta.tenant.clone(),
        ..wahooks::registry::new_endpoint(Provider::Meta, app.clone())
    };
    local
        .registry
        .create(&token, &signed_endpoint)
        .await
        .expect("sealed under SecretsKey");
    let (name, body) = common::payloads(Provider::Meta)
        .into_iter()
        .next()
        .expect("a Meta fixture");
    let signed = wahooks::auth::sign(&app, &body, chrono::Utc::now().timestamp());
    let response = local
        .receiver
        .handle(
            Route::Any,
            apigw_request("POST", &format!("/v1/hooks/{token}"), "", &signed, &body),
        )
        .await;
    assert_eq!(response.status(), 200, "signed {name}");
    let v: Value = serde_json::from_slice(response.body().as_ref()).expect("json");
    accepted.extend(
        v["accepted"]
            .as_array()
            .expect("accepted")
            .iter()
            .map(|x| x.as_str().expect("id").to_owned()),
    );

    let mut driver = StreamDriver::new(&local.sdk, &config.events_table);
    assert!(driver
        .drain(&local.fanout, Duration::from_secs(60))
        .await
        .expect("stream"));
    let mut arrived: HashMap<String, usize> = HashMap::new();
    for (_, url) in &config.queues {
        loop {
            let got = local
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            if got.messages().is_empty() {
                break;
            }
            for m in got.messages() {
                let e = wahooks_consumer::decode(m.body().expect("body")).expect("event");
                *arrived.entry(e.id).or_default() += 1;
                local
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().expect("handle"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
    assert_eq!(arrived.keys().cloned().collect::<HashSet<_>>(), accepted);
    assert!(arrived.values().all(|n| *n == 1));
}

#[tokio::test]
async fn what_moto_ignores_is_asserted_on_the_template() {
    let moto = Moto::start();
    let stack = deploy(&moto);

    // Every function in the Makefile is in the template, arm64 on provided.al2023, built by
    // cargo-lambda, logging at the configured level.
    let makefile = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    let functions_line = makefile
        .lines()
        .find(|l| l.starts_with("FUNCTIONS :="))
        .expect("FUNCTIONS in the Makefile");
    let built: HashSet<&str> = functions_line
        .trim_start_matches("FUNCTIONS :=")
        .split_whitespace()
        .collect();
    let sam = std::fs::read_to_string(root().join("infra/template.yaml")).expect("template");
    let lambdas = resources(&stack, "AWS::Lambda::Function");
    assert_eq!(lambdas.len(), built.len(), "one Lambda per built function");
    assert_eq!(
        sam.matches("BuildMethod: rust-cargolambda").count(),
        built.len(),
        "every function is built by cargo-lambda"
    );
    for f in &built {
        assert!(
            sam.contains(&format!("BuildProperties: {{ Binary: {f} }}")),
            "{f} is built by cargo-lambda"
        );
    }
    for (id, f) in &lambdas {
        let p = &f["Properties"];
        assert_eq!(p["Architectures"], serde_json::json!(["arm64"]), "{id}");
        assert_eq!(p["Runtime"], "provided.al2023", "{id}");
        assert_eq!(p["Handler"], "bootstrap", "{id}");
        let env = p["Environment"]["Variables"].as_object().expect("env");
        for var in [
            "WAHOOKS_EVENTS_TABLE",
            "WAHOOKS_ENDPOINTS_TABLE",
            "WAHOOKS_RETENTION_DAYS",
            "WAHOOKS_LOG_LEVEL",
        ] {
            assert!(env.contains_key(var), "{id} sets {var}");
        }
    }

    // Least privilege: a receiver's own policy allows GetItem on endpoints and PutItem (plus
    // UpdateItem/GetItem for state items) on events, nothing else; the fanout sends to queues
    // and reads the stream.
    for (id, role) in resources(&stack, "AWS::IAM::Role") {
        let statements: Vec<&Value> = role["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().into_iter().flatten())
            .collect();
        let actions: HashSet<String> = statements
            .iter()
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                _ => vec![],
            })
            .collect();
        assert!(!actions.iter().any(|a| a.contains('*')), "{id}: no wildcard actions");
        // Managed policies too: only logging (and X-Ray's, when tracing is on); nothing grants
        // stream or table actions on every resource.
        let managed: Vec<String> = role["Properties"]["ManagedPolicyArns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p.to_string())
            .collect();
        assert!(
            managed.iter().any(|p| p.contains("AWSLambdaBasicExecutionRole")),
            "{id}: logs"
        );
        for p in &managed {
            assert!(
                p.contains("AWSLambdaBasicExecutionRole") || p.contains("AWSXrayWriteOnlyAccess"),
                "{id}: unexpected managed policy {p}"
            );
        }
        if id.starts_with("Fanout") {
            assert!(
                actions.contains("sqs:SendMessage")
                    && actions.contains("dynamodb:GetRecords")
                    && actions.contains("s3:GetObject"),
                "{id}"
            );
            assert!(
                !actions.iter().any(|a| a == "s3:PutObject"),
                "{id}: the fanout only reads bodies"
            );
            assert!(!actions.iter().any(|a| a == "dynamodb:PutItem"), "{id}");
        } else if id.starts_with("MediaArchiver") {
            // The message's event and body, the files under media/, its events, its queue.
            let expected: HashSet<String> = [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "s3:PutObject",
                "s3:GetObject",
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:ListBucket",
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ]
            .map(String::from)
            .into();
            assert_eq!(actions, expected, "{id}");
        } else if id.starts_with("Timers") {
            // Its state items and the events they make (a transaction of puts), the endpoints'
            // windows, its own queue; no bucket, no update, no secret.
            let expected: HashSet<String> = [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ]
            .map(String::from)
            .into();
            assert_eq!(actions, expected, "{id}");
        } else {
            let mut expected: HashSet<String> = [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "s3:PutObject",
            ]
            .map(String::from)
            .into();
            // The social function is a receiver fed by its queue: it reads that queue too.
            if id.starts_with("Social") {
                expected.extend(
                    [
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                        "sqs:ChangeMessageVisibility",
                    ]
                    .map(String::from),
                );
            }
            assert_eq!(actions, expected, "{id}");
        }
    }

    // The events table: TTL on expires_at, PITR, SSE, stream NEW_IMAGE, on-demand.
    let tables = resources(&stack, "AWS::DynamoDB::Table");
    let events = tables
        .iter()
        .find(|(id, _)| id.as_str() == "EventsTable")
        .expect("EventsTable")
        .1;
    let p = &events["Properties"];
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"], "expires_at");
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(p["StreamSpecification"]["StreamViewType"], "NEW_IMAGE");
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    for (id, t) in &tables {
        assert_eq!(
            t["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
            "{id}"
        );
        assert_eq!(t["Properties"]["SSESpecification"]["SSEEnabled"], true, "{id}");
    }

    // The stream mapping: exactly the settings the local stream driver applies
    // (MappingSettings::DEPLOYED), partial failures, an on-failure destination, new events only.
    let mappings = resources(&stack, "AWS::Lambda::EventSourceMapping");
    assert_eq!(
        mappings.len(),
        4,
        "the stream's, the social queue's, the timers queue's and the media queue's"
    );
    let media = &mappings
        .iter()
        .find(|(id, _)| id.as_str() == "MediaQueueMapping")
        .expect("the media queue's mapping")
        .1["Properties"];
    assert_eq!(media["BatchSize"], 1, "one file per invocation");
    let media_queue = &stack["template"]["Resources"]["MediaQueue"]["Properties"];
    assert!(
        media_queue.get("FifoQueue").is_none(),
        "its retries are delayed messages"
    );
    assert_eq!(
        media_queue["VisibilityTimeout"], 720,
        "six times the archiver's timeout"
    );
    let timers = &mappings
        .iter()
        .find(|(id, _)| id.as_str() == "TimersQueueMapping")
        .expect("the timers queue's mapping")
        .1["Properties"];
    assert_eq!(
        timers["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    // Timers wait on SQS's per-message delay, which FIFO queues do not take: a standard queue.
    let timers_queue = &stack["template"]["Resources"]["TimersQueue"]["Properties"];
    assert!(timers_queue.get("FifoQueue").is_none(), "{timers_queue}");
    assert_eq!(timers_queue["RedrivePolicy"]["maxReceiveCount"], 5);
    let fanout_env = &stack["template"]["Resources"]["FanoutFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        fanout_env["WAHOOKS_TIMERS_URL"],
        serde_json::json!({"Ref": "TimersQueue"})
    );
    let social = &mappings
        .iter()
        .find(|(id, _)| id.as_str() == "SocialQueueMapping")
        .expect("the social queue's mapping")
        .1["Properties"];
    assert_eq!(
        social["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    assert_eq!(social["BatchSize"], 10);
    // The social queue outlives its function's retries: six times the timeout (10 s), as AWS
    // advises, and a DLQ after 5 receives.
    // With SocialTopicArn: raw delivery (the body is AWS's document), and only that topic may
    // send to the queue.
    let resources_of = &stack["template"]["Resources"];
    let subscription = &resources_of["SocialSubscription"];
    assert_eq!(subscription["Condition"], "HasSocialTopic");
    assert_eq!(subscription["Properties"]["RawMessageDelivery"], true);
    assert_eq!(subscription["Properties"]["Protocol"], "sqs");
    let policy = resources_of["SocialQueuePolicy"]["Properties"]["PolicyDocument"].to_string();
    assert!(
        policy.contains("aws:SourceArn") && policy.contains("SocialTopicArn") && policy.contains("sns.amazonaws.com"),
        "{policy}"
    );
    let social_queue = &stack["template"]["Resources"]["SocialQueue"]["Properties"];
    assert_eq!(social_queue["VisibilityTimeout"], 60);
    assert_eq!(social_queue["RedrivePolicy"]["maxReceiveCount"], 5);
    let m = &mappings
        .iter()
        .find(|(id, _)| id.as_str() == "FanoutStreamMapping")
        .expect("the stream's mapping")
        .1["Properties"];
    let deployed = wahooks::stream_driver::MappingSettings::DEPLOYED;
    let from_template = wahooks::stream_driver::MappingSettings {
        batch_size: m["BatchSize"].as_u64().expect("BatchSize") as usize,
        bisect_on_error: m["BisectBatchOnFunctionError"] == true,
        max_retry_attempts: match m["MaximumRetryAttempts"].as_i64().expect("MaximumRetryAttempts") {
            -1 => None,
            n => Some(n as u32),
        },
        max_record_age: match m["MaximumRecordAgeInSeconds"]
            .as_i64()
            .expect("MaximumRecordAgeInSeconds")
        {
            -1 => None,
            n => Some(Duration::from_secs(n as u64)),
        },
    };
    assert_eq!(
        from_template, deployed,
        "infra/template.yaml and the local stream driver agree"
    );
    assert!(
        m["FilterCriteria"].to_string().contains("E#"),
        "only event items invoke the fanout"
    );
    assert_eq!(
        m["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    assert!(m["DestinationConfig"]["OnFailure"]["Destination"].is_object());
    // The local stream driver applies the same filter (`recover::passes_filter`).
    let filter = m["FilterCriteria"].to_string();
    assert!(
        filter.contains("INSERT") && filter.contains(r#"\"prefix\": \"E#\""#),
        "{filter}"
    );

    // Every queue: 1 MiB messages; every non-DLQ queue redrives to a DLQ.
    for (id, q) in resources(&stack, "AWS::SQS::Queue") {
        // The stream failures and parked records are small notes, not events.
        if id != "StreamFailuresDlq" && id != "ParkedRecordsQueue" {
            assert_eq!(q["Properties"]["MaximumMessageSize"], 1_048_576, "{id}");
        }
        if id.ends_with("Queue") && id != "ParkedRecordsQueue" {
            assert!(q["Properties"]["RedrivePolicy"].is_object(), "{id}");
        }
    }

    // The HTTP API routes: every route the code serves, with the production paths.
    let routes: HashSet<String> = resources(&stack, "AWS::ApiGatewayV2::Route")
        .iter()
        .filter_map(|(_, r)| r["Properties"]["RouteKey"].as_str().map(str::to_owned))
        .collect();
    let body_routes: HashSet<String> = stack["template"]["Resources"]["HttpApi"]["Properties"]["Body"]["paths"]
        .as_object()
        .map(|paths| paths.keys().cloned().collect())
        .unwrap_or_default();
    for route in Route::ALL {
        let path = format!("/v1/hooks/{{token}}/{}", route.as_str());
        assert!(
            body_routes.contains(&path) || routes.iter().any(|r| r.ends_with(&path)),
            "{path} is routed: {body_routes:?} {routes:?}"
        );
    }
    assert!(body_routes.contains("/v1/hooks/{token}") || routes.iter().any(|r| r.ends_with("/v1/hooks/{token}")));

    // Every route key has its own throttling (a setting naming no route fails the deploy), and
    // every function a reserved concurrency (issue #28: what a flood can cost).
    let stage = resources(&stack, "AWS::ApiGatewayV2::Stage");
    let settings = stage.first().expect("the stage").1["Properties"]["RouteSettings"]
        .as_object()
        .expect("RouteSettings");
    let route_keys: HashSet<String> = stack["template"]["Resources"]["HttpApi"]["Properties"]["Body"]["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, methods)| {
            let methods = methods
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_else(Vec::new);
            methods.into_iter().map(move |m| match m.as_str() {
                "x-amazon-apigateway-any-method" => format!("ANY {path}"),
                m => format!("{} {path}", m.to_ascii_uppercase()),
            })
        })
        .collect();
    assert_eq!(settings.keys().cloned().collect::<HashSet<_>>(), route_keys);
    for (id, f) in &lambdas {
        assert!(f["Properties"]["ReservedConcurrentExecutions"].is_object(), "{id}");
    }

    // Alarms: every DLQ, 5xx, 4xx floods, quarantines, throttles, iterator age, and the age of
    // each queue's oldest message; each tells the topic when it fires and when it is OK again.
    let alarms = resources(&stack, "AWS::CloudWatch::Alarm");
    assert_eq!(
        alarms.len(),
        25,
        "9 DLQ (the social, timers and media queues' too), 5xx, 4xx, quarantine, corrupt endpoints, endpoint flood, throttles, iterator age, 5 queue ages, parked records, silent and disconnected instances, media failed"
    );
    for (id, a) in &alarms {
        assert!(a["Properties"]["AlarmActions"].is_array(), "{id}");
        assert!(a["Properties"]["OKActions"].is_array(), "{id}");
    }
    let ages: Vec<_> = alarms
        .iter()
        .filter(|(_, a)| a["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage")
        .collect();
    assert_eq!(ages.len(), DEFAULT_QUEUES.len());

    // The topic CloudWatch can publish to: its own KMS key whose policy lets CloudWatch use it
    // (not alias/aws/sns), and an email subscription when AlarmEmail is set.
    let topic = &stack["template"]["Resources"]["AlarmTopic"]["Properties"];
    assert_eq!(topic["KmsMasterKeyId"], serde_json::json!({"Ref": "AlarmKey"}));
    let key_policy = stack["template"]["Resources"]["AlarmKey"]["Properties"]["KeyPolicy"].to_string();
    assert!(key_policy.contains("cloudwatch.amazonaws.com"), "{key_policy}");
    assert_eq!(
        stack["template"]["Resources"]["AlarmSubscription"]["Properties"]["Protocol"],
        "email"
    );

    // Signing secrets' key: only the seven receivers' roles may decrypt, and only with the
    // endpoint's encryption context; the account (operators, through IAM) may administer the
    // key and make data keys, never decrypt. Every function is told the key.
    let secrets = &stack["template"]["Resources"]["SecretsKey"]["Properties"];
    assert_eq!(secrets["EnableKeyRotation"], true);
    let statements = secrets["KeyPolicy"]["Statement"].as_array().expect("statements");
    let decrypting: Vec<&Value> = statements
        .iter()
        .filter(|st| st["Action"].to_string().contains("Decrypt") || st["Action"] == "kms:*")
        .collect();
    assert_eq!(decrypting.len(), 1, "one statement may decrypt: {statements:?}");
    let open = decrypting[0];
    assert_eq!(open["Action"], "kms:Decrypt");
    assert_eq!(
        open["Condition"]["ForAnyValue:StringEquals"]["kms:EncryptionContextKeys"],
        "wahooks:endpoint"
    );
    let roles: HashSet<String> = open["Principal"]["AWS"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| r["Fn::GetAtt"][0].as_str().unwrap_or_default().to_owned())
        .collect();
    let receivers: HashSet<String> = lambdas
        .iter()
        .map(|(id, _)| id.to_string())
        // (Not the social function: its sources have no secret to open; nor the timers function,
        // which reads only the endpoints' windows. The media archiver opens media tokens.)
        .filter(|id| !matches!(id.as_str(), "FanoutFunction" | "SocialFunction" | "TimersFunction"))
        .map(|id| format!("{id}Role"))
        .collect();
    assert_eq!(
        roles, receivers,
        "exactly the receivers' and the media archiver's roles open secrets"
    );
    for (id, f) in &lambdas {
        assert_eq!(
            f["Properties"]["Environment"]["Variables"]["WAHOOKS_SECRETS_KEY"],
            serde_json::json!({"Fn::GetAtt": ["SecretsKey", "Arn"]}),
            "{id}"
        );
    }
    assert!(stack["template"]["Outputs"]["SecretsKeyArn"].is_object());

    // Every main queue keeps messages 14 days; both tables are protected from deletion.
    for (id, q) in resources(&stack, "AWS::SQS::Queue") {
        assert_eq!(q["Properties"]["MessageRetentionPeriod"], 1_209_600, "{id}");
    }
    for (id, t) in resources(&stack, "AWS::DynamoDB::Table") {
        assert_eq!(t["Properties"]["DeletionProtectionEnabled"], true, "{id}");
    }

    // The dashboard's body is JSON once CloudFormation substitutes its references.
    let dashboard = resources(&stack, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboard.len(), 1);
    let body = dashboard[0].1["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("a substituted body");
    let mut substituted = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        substituted.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed") + start;
        substituted.push('X');
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    let parsed: Value = serde_json::from_str(&substituted).expect("the dashboard body is JSON");
    assert!(parsed["widgets"].as_array().is_some_and(|w| w.len() >= 8));
}
