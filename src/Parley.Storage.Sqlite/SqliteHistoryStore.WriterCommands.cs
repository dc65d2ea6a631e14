using Microsoft.Data.Sqlite;
using Parley.Hub.History;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteHistoryStore
{
    /// <summary>
    /// The prepared statements of the writer connection, created once and reused for every append and
    /// trim chunk (only parameter values change). Used only while holding the write lock.
    /// </summary>
    private sealed class WriterCommands : IDisposable
    {
        // seq is left out: SQLite assigns max(seq) + 1, so rows are appended at the end of the table.
        // A retained message with the same client id makes the insert do nothing (one index seek for
        // both the check and the insert); any other conflict, such as an offset already taken by a
        // second writer, still fails.
        private const string InsertSql = """
            INSERT INTO messages(topic_id, "offset", ts, max_ts, id, sender, body, client_id, meta)
            VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
            ON CONFLICT(topic_id, client_id) WHERE client_id IS NOT NULL DO NOTHING;
            """;

        private const string UpdateHeadSql = "UPDATE topics SET head = ?2, max_ts = ?3 WHERE topic_id = ?1;";

        // Run once per message and once per topic per batch, so bypassing Microsoft.Data.Sqlite's
        // per-execution overhead (see RawStatement).
        private readonly RawStatement _insert;
        private readonly RawStatement _updateHead;

        private readonly SqliteCommand _findByClientId;
        private readonly SqliteParameter _findTopicId;
        private readonly SqliteParameter _findClientId;

        private readonly SqliteCommand _loadTopic;
        private readonly SqliteParameter _loadTopicName;

        private readonly SqliteCommand _createTopic;
        private readonly SqliteParameter _createTopicName;

        private readonly SqliteCommand _deleteRange;
        private readonly SqliteParameter _deleteTopicId;
        private readonly SqliteParameter _deleteFrom;
        private readonly SqliteParameter _deleteBelow;

        private readonly SqliteCommand _advanceRetained;
        private readonly SqliteParameter _advanceTopicId;
        private readonly SqliteParameter _advanceFirstRetained;
        private readonly SqliteParameter _advanceTrimmedTs;

        private readonly SqliteCommand[] _all;

        public WriterCommands(SqliteConnection writer)
        {
            _insert = new RawStatement(writer, InsertSql);
            _updateHead = new RawStatement(writer, UpdateHeadSql);

            _findByClientId = Create(writer, """
                SELECT "offset", id, ts, sender, body, meta FROM messages
                WHERE topic_id = $topic_id AND client_id = $client_id;
                """);
            _findTopicId = Add(_findByClientId, "$topic_id", SqliteType.Integer);
            _findClientId = Add(_findByClientId, "$client_id", SqliteType.Text);

            _loadTopic = Create(writer, "SELECT topic_id, head, max_ts FROM topics WHERE topic = $topic;");
            _loadTopicName = Add(_loadTopic, "$topic", SqliteType.Text);

            _createTopic = Create(writer, """
                INSERT INTO topics(topic, head, max_ts, first_retained, last_trimmed_ts) VALUES($topic, 0, 0, 1, 0)
                RETURNING topic_id;
                """);
            _createTopicName = Add(_createTopic, "$topic", SqliteType.Text);

            _deleteRange = Create(writer, """
                DELETE FROM messages WHERE topic_id = $topic_id AND "offset" >= $from AND "offset" < $below
                RETURNING ts;
                """);
            _deleteTopicId = Add(_deleteRange, "$topic_id", SqliteType.Integer);
            _deleteFrom = Add(_deleteRange, "$from", SqliteType.Integer);
            _deleteBelow = Add(_deleteRange, "$below", SqliteType.Integer);

            _advanceRetained = Create(writer, """
                UPDATE topics SET first_retained = max(first_retained, $first_retained),
                                  last_trimmed_ts = max(last_trimmed_ts, $trimmed_ts)
                WHERE topic_id = $topic_id;
                """);
            _advanceTopicId = Add(_advanceRetained, "$topic_id", SqliteType.Integer);
            _advanceFirstRetained = Add(_advanceRetained, "$first_retained", SqliteType.Integer);
            _advanceTrimmedTs = Add(_advanceRetained, "$trimmed_ts", SqliteType.Integer);

            _all = [_findByClientId, _loadTopic, _createTopic, _deleteRange, _advanceRetained];
            foreach (var command in _all)
            {
                command.Prepare();
            }
        }

        /// <summary>Points every command at the writer's current transaction (Microsoft.Data.Sqlite requires it).</summary>
        public void Enlist(SqliteTransaction transaction)
        {
            foreach (var command in _all)
            {
                command.Transaction = transaction;
            }
        }

        /// <summary>Stores the message; false (nothing stored) when the topic already holds a message
        /// with the request's client id.</summary>
        public bool TryInsertMessage(long topicId, long offset, long maxTs, AppendRequest request)
        {
            _insert.Bind(1, topicId);
            _insert.Bind(2, offset);
            _insert.Bind(3, request.TimestampMs);
            _insert.Bind(4, maxTs);
            _insert.Bind(5, request.Id);
            _insert.Bind(6, request.From);
            _insert.Bind(7, request.Body);
            _insert.Bind(8, request.ClientId);
            _insert.Bind(9, request.MetaJson);
            return _insert.Execute() == 1;
        }

        public StoredMessage? FindByClientId(long topicId, string topic, string clientId)
        {
            _findTopicId.Value = topicId;
            _findClientId.Value = clientId;
            using var reader = _findByClientId.ExecuteReader();
            if (!reader.Read())
            {
                return null;
            }

            return new StoredMessage(
                topic,
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetInt64(2),
                reader.GetString(3),
                reader.GetString(4),
                clientId,
                reader.IsDBNull(5) ? null : reader.GetString(5));
        }

        /// <summary>The topic's id, committed head and max_ts, creating its row (head 0, max_ts 0) when
        /// it has none yet.</summary>
        public (long TopicId, long Head, long MaxTs) LoadOrCreateTopic(string topic)
        {
            _loadTopicName.Value = topic;
            using (var reader = _loadTopic.ExecuteReader())
            {
                if (reader.Read())
                {
                    return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
                }
            }

            _createTopicName.Value = topic;
            return ((long)_createTopic.ExecuteScalar()!, 0, 0);
        }

        public void UpdateHead(long topicId, long head, long maxTs)
        {
            _updateHead.Bind(1, topicId);
            _updateHead.Bind(2, head);
            _updateHead.Bind(3, maxTs);
            _updateHead.Execute();
        }

        /// <summary>Deletes offsets in [from, below) of one topic and advances its retention bookkeeping.
        /// Returns how many messages were deleted.</summary>
        public long TrimRange(long topicId, long from, long below)
        {
            _deleteTopicId.Value = topicId;
            _deleteFrom.Value = from;
            _deleteBelow.Value = below;
            long removed = 0;
            long maxTimestamp = 0;
            using (var reader = _deleteRange.ExecuteReader())
            {
                while (reader.Read())
                {
                    removed++;
                    maxTimestamp = Math.Max(maxTimestamp, reader.GetInt64(0));
                }
            }

            _advanceTopicId.Value = topicId;
            _advanceFirstRetained.Value = below;
            _advanceTrimmedTs.Value = maxTimestamp;
            _advanceRetained.ExecuteNonQuery();
            return removed;
        }

        public void Dispose()
        {
            _insert.Dispose();
            _updateHead.Dispose();
            foreach (var command in _all)
            {
                command.Dispose();
            }
        }

        private static SqliteCommand Create(SqliteConnection connection, string sql)
        {
            var command = connection.CreateCommand();
            command.CommandText = sql;
            return command;
        }

        private static SqliteParameter Add(SqliteCommand command, string name, SqliteType type) =>
            command.Parameters.Add(name, type);
    }
}
