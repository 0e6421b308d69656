package dev.streamlet.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerInterceptor;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerInterceptor;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;

/**
 * The Kafka Streams side of streamlet's stateless, stateful, join, window and table-join benchmark cases.
 *
 * <p>Arguments are {@code key=value}: case, bootstrap, input, output, users, records, expected,
 * threshold, app (application id), state (state dir), commit_ms, timeout_s, window_ms, emit_interval_ms,
 * left, right.
 * One stream thread,
 * at-least-once, default caching. Prints one JSON line: records, seconds, processed, outputs,
 * half_seconds (the clock when half the work was done: the second half runs with a warm JIT).
 *
 * <p>Measured span: from the first of (first records fetched by the main consumer, a store
 * restore starting, the client reaching RUNNING) until, for stateless and join, the producer has
 * acknowledged the expected number of output records, and for stateful, window and table-join, a
 * commit covering every input offset has completed (outputs and changelog acknowledged, stores
 * flushed, offsets committed).
 */
public final class KStreamsBench {
    static final ObjectMapper JSON = new ObjectMapper();
    static final AtomicLong PROCESSED = new AtomicLong();
    static final AtomicLong ACKED = new AtomicLong();
    static final Map<TopicPartition, Long> COMMITTED = new ConcurrentHashMap<>();
    static final CountDownLatch DONE = new CountDownLatch(1);
    static volatile long t0;
    static volatile long t1;
    /** when half of the inputs were processed (stateful) or half of the outputs acknowledged */
    static volatile long tHalf;
    static volatile String outputTopic = "";
    static final Set<String> INPUT_TOPICS = new HashSet<>();
    static volatile long records;
    static volatile long expected;
    static volatile boolean endAtCommit;

    private KStreamsBench() {}

    static synchronized void start() {
        if (t0 == 0) {
            t0 = System.nanoTime();
        }
    }

    static synchronized void finish() {
        if (t1 == 0) {
            t1 = System.nanoTime();
            DONE.countDown();
        }
    }

    /** Counts acknowledged output records; the last one ends the stateless and join cases. */
    public static final class Acks implements ProducerInterceptor<byte[], byte[]> {
        @Override
        public ProducerRecord<byte[], byte[]> onSend(ProducerRecord<byte[], byte[]> record) {
            return record;
        }

        @Override
        public void onAcknowledgement(RecordMetadata md, Exception exception) {
            if (exception == null && md != null && outputTopic.equals(md.topic())) {
                long n = ACKED.incrementAndGet();
                if (n == expected / 2 && !endAtCommit) {
                    tHalf = System.nanoTime();
                }
                if (n == expected && !endAtCommit) {
                    finish();
                }
            }
        }

        @Override
        public void close() {}

        @Override
        public void configure(Map<String, ?> configs) {}
    }

    /** Starts the clock at the first fetched records; a commit of every input offset ends stateful. */
    public static final class Commits implements ConsumerInterceptor<byte[], byte[]> {
        @Override
        public ConsumerRecords<byte[], byte[]> onConsume(ConsumerRecords<byte[], byte[]> recs) {
            if (!recs.isEmpty()) {
                start();
            }
            return recs;
        }

        @Override
        public void onCommit(Map<TopicPartition, OffsetAndMetadata> offsets) {
            offsets.forEach((tp, om) -> {
                if (INPUT_TOPICS.contains(tp.topic())) {
                    COMMITTED.put(tp, om.offset());
                }
            });
            if (endAtCommit && COMMITTED.values().stream().mapToLong(Long::longValue).sum() >= records) {
                finish();
            }
        }

        @Override
        public void close() {}

        @Override
        public void configure(Map<String, ?> configs) {}
    }

    /** A JSON value (Jackson tree) as UTF-8 bytes. */
    static Serde<JsonNode> jsonSerde() {
        return Serdes.serdeFrom((Serializer<JsonNode>) (t, v) -> v == null ? null : dump(v),
                (Deserializer<JsonNode>) (t, d) -> d == null ? null : parse(d));
    }

    /** The stateful row: {n, first offset, first amount, last offset, last amount}, 40 bytes. */
    static Serde<long[]> statsSerde() {
        Serializer<long[]> ser = (t, v) -> {
            if (v == null) {
                return null;
            }
            ByteBuffer b = ByteBuffer.allocate(8 * v.length);
            for (long x : v) {
                b.putLong(x);
            }
            return b.array();
        };
        Deserializer<long[]> de = (t, d) -> {
            if (d == null) {
                return null;
            }
            ByteBuffer b = ByteBuffer.wrap(d);
            long[] v = new long[d.length / 8];
            for (int i = 0; i < v.length; i++) {
                v[i] = b.getLong();
            }
            return v;
        };
        return Serdes.serdeFrom(ser, de);
    }

    static JsonNode parse(byte[] bytes) {
        try {
            return JSON.readTree(bytes);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static byte[] dump(JsonNode v) {
        try {
            return JSON.writeValueAsBytes(v);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    /** stateless: keep amount >= threshold, add "flag": true, write with the input key. */
    static void stateless(StreamsBuilder b, Map<String, String> a) {
        long threshold = Long.parseLong(a.get("threshold"));
        b.stream(a.get("input"), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .mapValues(KStreamsBench::parse)
                .filter((k, v) -> v.get("amount").asLong() >= threshold)
                .mapValues(v -> {
                    ((ObjectNode) v).put("flag", true);
                    return dump(v);
                })
                .to(a.get("output"), Produced.with(Serdes.String(), Serdes.ByteArray()));
    }

    /** The value's amount with the record's offset; the last input record asks for a commit. */
    static final class AmountWithOffset implements FixedKeyProcessor<String, byte[], long[]> {
        private FixedKeyProcessorContext<String, long[]> ctx;

        @Override
        public void init(FixedKeyProcessorContext<String, long[]> context) {
            ctx = context;
        }

        @Override
        public void process(FixedKeyRecord<String, byte[]> r) {
            JsonNode amount = parse(r.value()).get("amount");
            long offset = ctx.recordMetadata().map(m -> m.offset()).orElse(-1L);
            ctx.forward(r.withValue(new long[] {offset, amount == null ? Long.MIN_VALUE : amount.asLong()}));
            long n = PROCESSED.incrementAndGet();
            if (n == records / 2) {
                tHalf = System.nanoTime();
            }
            if (n == records) {
                ctx.commit(); // the state made durable right after the last record, as streamlet's side does
            }
        }
    }

    /** stateful: per key, count + earliest and latest amount by offset; RocksDB store, changelog. */
    static void stateful(StreamsBuilder b, Map<String, String> a) {
        b.stream(a.get("input"), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .processValues(AmountWithOffset::new)
                .groupByKey()
                .aggregate(() -> new long[] {0, -1, 0, -1, 0}, (k, v, agg) -> {
                    if (agg[0] == 0) {
                        agg[1] = v[0];
                        agg[2] = v[1];
                    }
                    agg[0] += 1;
                    if (v[1] != Long.MIN_VALUE) {
                        agg[3] = v[0];
                        agg[4] = v[1];
                    }
                    return agg;
                }, Materialized.<String, long[], KeyValueStore<Bytes, byte[]>>as("stats")
                        .withKeySerde(Serdes.String()).withValueSerde(statsSerde()));
    }

    /** join: orders joined with the users table (its source topic restored up to the committed offset). */
    static void join(StreamsBuilder b, Map<String, String> a) {
        KTable<String, JsonNode> users = b.table(a.get("users"),
                Consumed.with(Serdes.String(), jsonSerde()),
                Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("users")
                        .withKeySerde(Serdes.String()).withValueSerde(jsonSerde()));
        KStream<String, JsonNode> orders = b
                .stream(a.get("input"), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .mapValues(KStreamsBench::parse);
        orders.join(users, (v, u) -> {
            ((ObjectNode) v).set("tier", u.get("tier"));
            return dump(v);
        }).to(a.get("output"), Produced.with(Serdes.String(), Serdes.ByteArray()));
    }

    /** The event time of a window record: its JSON value's "ts" field (the value stays bytes). */
    public static final class TsField implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            return parse((byte[]) record.value()).get("ts").asLong();
        }
    }

    /** Counts the records that reach it; the last input record asks for a commit. */
    static final class CountInputs implements FixedKeyProcessor<String, byte[], byte[]> {
        private FixedKeyProcessorContext<String, byte[]> ctx;

        @Override
        public void init(FixedKeyProcessorContext<String, byte[]> context) {
            ctx = context;
        }

        @Override
        public void process(FixedKeyRecord<String, byte[]> r) {
            ctx.forward(r);
            long n = PROCESSED.incrementAndGet();
            if (n == records / 2) {
                tHalf = System.nanoTime();
            }
            if (n == records) {
                ctx.commit();
            }
        }
    }

    /** window: a tumbling count per key, emitted once per window when it closes (grace 0). */
    static void window(StreamsBuilder b, Map<String, String> a) {
        long size = Long.parseLong(a.get("window_ms"));
        b.stream(a.get("input"), Consumed.with(Serdes.String(), Serdes.ByteArray())
                        .withTimestampExtractor(new TsField()))
                .processValues(CountInputs::new)
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofMillis(size)))
                .emitStrategy(EmitStrategy.onWindowClose())
                .count(Materialized.as("counts"))
                .toStream()
                .to(a.get("output"), Produced.with(WindowedSerdes.timeWindowedSerdeFrom(String.class, size),
                        Serdes.Long()));
    }

    /** A table source's JSON value serde that counts the records it reads (tombstones included). */
    static Serde<JsonNode> countingJsonSerde() {
        return Serdes.serdeFrom((Serializer<JsonNode>) (t, v) -> v == null ? null : dump(v),
                (Deserializer<JsonNode>) (t, d) -> {
                    long n = PROCESSED.incrementAndGet();
                    if (n == records / 2) {
                        tHalf = System.nanoTime();
                    }
                    return d == null ? null : parse(d);
                });
    }

    /**
     * Asks for a commit once every input record has been read: a wall-clock punctuation every 10 ms in
     * the task of partition 0 only (a commit that one task asks for commits every task). Only one: with
     * 5 ms punctuations in all 32 tasks this side ran at ~4,700 records/s instead of ~39,000 (500,000
     * updates); the stream thread processes fewer records per loop after a loop that punctuated.
     */
    static final class CommitWhenDone implements FixedKeyProcessor<String, byte[], byte[]> {
        private FixedKeyProcessorContext<String, byte[]> ctx;

        @Override
        public void init(FixedKeyProcessorContext<String, byte[]> context) {
            ctx = context;
            if (ctx.taskId().partition() != 0) {
                return;
            }
            ctx.schedule(Duration.ofMillis(10), PunctuationType.WALL_CLOCK_TIME, now -> {
                if (PROCESSED.get() >= records) {
                    ctx.commit();
                }
            });
        }

        @Override
        public void process(FixedKeyRecord<String, byte[]> r) {
            ctx.forward(r);
        }
    }

    /** table-join: an inner join of two source tables, every change of the result to the output. */
    static void tableJoin(StreamsBuilder b, Map<String, String> a) {
        KTable<String, JsonNode> left = b.table(a.get("left"), Consumed.with(Serdes.String(), countingJsonSerde()),
                Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("left")
                        .withKeySerde(Serdes.String()).withValueSerde(jsonSerde()));
        KTable<String, JsonNode> right = b.table(a.get("right"), Consumed.with(Serdes.String(), countingJsonSerde()),
                Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("right")
                        .withKeySerde(Serdes.String()).withValueSerde(jsonSerde()));
        left.join(right, (l, r) -> {
            ObjectNode joined = ((ObjectNode) l).deepCopy();
            joined.setAll((ObjectNode) r);
            return dump(joined);
        }, Named.as("joined"))
                .toStream()
                .processValues(CommitWhenDone::new)
                .to(a.get("output"), Produced.with(Serdes.String(), Serdes.ByteArray()));
    }

    static long storedCount(KafkaStreams streams) {
        ReadOnlyKeyValueStore<String, long[]> store = streams.store(
                StoreQueryParameters.fromNameAndType("stats", QueryableStoreTypes.keyValueStore()));
        long total = 0;
        try (KeyValueIterator<String, long[]> it = store.all()) {
            while (it.hasNext()) {
                KeyValue<String, long[]> kv = it.next();
                total += kv.value[0];
            }
        }
        return total;
    }

    /** Peak resident set of this JVM (VmHWM, Linux), MB; 0 elsewhere. */
    static double peakRssMb() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (String arg : argv) {
            int eq = arg.indexOf('=');
            a.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        String kase = a.get("case");
        INPUT_TOPICS.add(a.get("input"));
        outputTopic = a.getOrDefault("output", "");
        records = Long.parseLong(a.get("records"));
        expected = Long.parseLong(a.getOrDefault("expected", a.get("records")));
        endAtCommit = kase.equals("stateful") || kase.equals("window") || kase.equals("table-join");

        StreamsBuilder builder = new StreamsBuilder();
        Properties props = new Properties();
        switch (kase) {
            case "stateless" -> stateless(builder, a);
            case "stateful" -> stateful(builder, a);
            case "join" -> {
                join(builder, a);
                props.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG,
                        StreamsConfig.REUSE_KTABLE_SOURCE_TOPICS);
            }
            case "window" -> {
                window(builder, a);
                // Kafka Streams runs an emit-final pass at most once per this much wall-clock time per task
                // (an internal config); 0: at every record that moves the window close time, as streamlet
                // and the raw loop do. Left at its default unless given (see benchmarks/cases/window.py).
                String interval = a.getOrDefault("emit_interval_ms", "");
                if (!interval.isEmpty()) {
                    props.put("__emit.interval.ms.kstreams.windowed.aggregation__", Long.parseLong(interval));
                }
            }
            case "table-join" -> {
                INPUT_TOPICS.add(a.get("left"));
                INPUT_TOPICS.add(a.get("right"));
                tableJoin(builder, a);
                props.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG,
                        StreamsConfig.REUSE_KTABLE_SOURCE_TOPICS);
            }
            default -> throw new IllegalArgumentException("unknown case " + kase);
        }
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("app"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state"));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG,
                Long.parseLong(a.getOrDefault("commit_ms", "1000")));
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        props.put(StreamsConfig.mainConsumerPrefix(ConsumerConfig.INTERCEPTOR_CLASSES_CONFIG),
                Commits.class.getName());
        props.put(StreamsConfig.producerPrefix(ProducerConfig.INTERCEPTOR_CLASSES_CONFIG),
                Acks.class.getName());
        // streamlet's producer settings where the Java client has them (Kafka Streams' own default is 100 ms)
        props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        props.put(StreamsConfig.producerPrefix(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG), true);

        KafkaStreams streams = new KafkaStreams(builder.build(props), props);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                start();
            }
        });
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                start();
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {}

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {}
        });
        Throwable[] failure = new Throwable[1];
        streams.setUncaughtExceptionHandler(e -> {
            failure[0] = e;
            DONE.countDown();
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        long timeout = Long.parseLong(a.getOrDefault("timeout_s", "600"));
        boolean finished = DONE.await(timeout, TimeUnit.SECONDS);
        if (failure[0] != null || !finished) {
            System.err.println(failure[0] != null ? "Kafka Streams failed: " + failure[0]
                    : "not done after " + timeout + " s: processed " + PROCESSED.get() + ", acknowledged "
                    + ACKED.get() + " of " + expected);
            if (failure[0] != null) {
                failure[0].printStackTrace();
            }
            streams.close(Duration.ofSeconds(10));
            System.exit(1);
        }
        double seconds = (t1 - t0) / 1e9;
        long total = kase.equals("stateful") ? storedCount(streams) : -1;
        streams.close(Duration.ofSeconds(30));
        System.out.println("{\"records\": " + records + ", \"seconds\": " + seconds
                + ", \"outputs\": " + ACKED.get()
                + ", \"processed\": " + (endAtCommit ? PROCESSED.get() : records)
                + (total >= 0 ? ", \"total_count\": " + total : "")
                + ", \"half_seconds\": " + (tHalf - t0) / 1e9
                + ", \"peak_rss_mb\": " + peakRssMb() + "}");
        System.out.flush();
        System.exit(0);
    }
}
