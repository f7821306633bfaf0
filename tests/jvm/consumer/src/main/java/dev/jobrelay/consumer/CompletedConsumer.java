package dev.jobrelay.consumer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads every committed JobCompleted on a topic, from the beginning to its current end, and
 * prints each as one JSON line: where it was, which schema file wrote it, its headers and the
 * event read as the newest schema. Undecodable records are reported on stderr and skipped.
 *
 * <p>Arguments: bootstrap servers, topic, the schemas/job-completed folder.
 */
public final class CompletedConsumer {
    private static final Pattern VERSION = Pattern.compile("^v(\\d+)\\.avsc$");
    private static final Duration DEADLINE = Duration.ofSeconds(60);

    private CompletedConsumer() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 3) {
            System.err.println("usage: CompletedConsumer BOOTSTRAP TOPIC SCHEMA_DIR");
            System.exit(64);
        }
        Map<Long, String> files = new HashMap<>();
        BinaryMessageDecoder<GenericRecord> decoder = decoder(Path.of(args[2]), files);
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config(args[0]))) {
            List<TopicPartition> partitions = new ArrayList<>();
            consumer.partitionsFor(args[1]).forEach(p -> partitions.add(new TopicPartition(args[1], p.partition())));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions); // the last stable offsets
            long giveUp = System.nanoTime() + DEADLINE.toNanos();
            while (!partitions.stream().allMatch(tp -> consumer.position(tp) >= end.get(tp))) {
                if (System.nanoTime() > giveUp) {
                    System.err.println("timed out before the end of " + args[1]);
                    System.exit(2);
                }
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    print(record, decoder, files);
                }
            }
        }
    }

    private static Properties config(String bootstrap) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"); // only committed outcomes
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return props;
    }

    /** A decoder reading as the newest version, knowing every version's fingerprint. */
    private static BinaryMessageDecoder<GenericRecord> decoder(Path dir, Map<Long, String> files) throws IOException {
        Map<Integer, Schema> versions = new HashMap<>();
        try (Stream<Path> paths = Files.list(dir)) {
            for (Path path : paths.toList()) {
                Matcher match = VERSION.matcher(path.getFileName().toString());
                if (match.matches()) {
                    Schema schema = new Schema.Parser().parse(path.toFile());
                    versions.put(Integer.parseInt(match.group(1)), schema);
                    files.put(SchemaNormalization.parsingFingerprint64(schema), path.getFileName().toString());
                }
            }
        }
        int newest = versions.keySet().stream().max(Integer::compare).orElseThrow();
        BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), versions.get(newest));
        versions.values().forEach(decoder::addSchema);
        return decoder;
    }

    private static void print(
            ConsumerRecord<byte[], byte[]> record, BinaryMessageDecoder<GenericRecord> decoder, Map<Long, String> files) {
        String where = record.topic() + "/" + record.partition() + "@" + record.offset();
        GenericRecord event;
        try {
            event = decoder.decode(record.value());
        } catch (IOException | RuntimeException e) {
            System.err.println("skipped undecodable record " + where + ": " + e);
            return;
        }
        // C3 01, then the writer schema's CRC-64-AVRO fingerprint, little-endian
        long fingerprint = ByteBuffer.wrap(record.value(), 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        StringBuilder line = new StringBuilder("{");
        line.append("\"partition\": ").append(record.partition());
        line.append(", \"offset\": ").append(record.offset());
        line.append(", \"key\": ").append(quote(record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8)));
        line.append(", \"fingerprint\": ").append(quote(HexFormat.of().formatHex(record.value(), 2, 10)));
        line.append(", \"writer_schema\": ").append(quote(files.get(fingerprint)));
        line.append(", \"headers\": {");
        String separator = "";
        for (Header header : record.headers()) {
            String value = header.value() == null ? null : new String(header.value(), StandardCharsets.UTF_8);
            line.append(separator).append(quote(header.key())).append(": ").append(quote(value));
            separator = ", ";
        }
        line.append("}, \"event\": ").append(GenericData.get().toString(event)).append("}");
        System.out.println(line);
    }

    private static String quote(String text) {
        if (text == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}
