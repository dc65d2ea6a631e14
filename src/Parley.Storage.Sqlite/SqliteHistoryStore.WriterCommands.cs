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
        private readonly SqliteCommand _insert;
        private readonly SqliteParameter _insertTopic;
        private readonly SqliteParameter _insertOffset;
        private readonly SqliteParameter _insertId;
        private readonly SqliteParameter _insertTs;
        private readonly SqliteParameter _insertSender;
        private readonly SqliteParameter _insertBody;
        private readonly SqliteParameter _insertClientId;
        private readonly SqliteParameter _insertMeta;

        private readonly SqliteCommand _findByClientId;
        private readonly SqliteParameter _findTopic;
        private readonly SqliteParameter _findClientId;

        private readonly SqliteCommand _loadHead;
        private readonly SqliteParameter _loadHeadTopic;

        private readonly SqliteCommand _upsertHead;
        private readonly SqliteParameter _upsertTopic;
        private readonly SqliteParameter _upsertHeadValue;

        private readonly SqliteCommand _deleteRange;
        private readonly SqliteParameter _deleteTopic;
        private readonly SqliteParameter _deleteFrom;
        private readonly SqliteParameter _deleteBelow;

        private readonly SqliteCommand _advanceRetained;
        private readonly SqliteParameter _advanceTopic;
        private readonly SqliteParameter _advanceFirstRetained;
        private readonly SqliteParameter _advanceTrimmedTs;

        private readonly SqliteCommand[] _all;

        public WriterCommands(SqliteConnection writer)
        {
            _insert = Create(writer, """
                INSERT INTO messages(topic, "offset", id, ts, sender, body, client_id, meta)
                VALUES($topic, $offset, $id, $ts, $sender, $body, $client_id, $meta);
                """);
            _insertTopic = Add(_insert, "$topic", SqliteType.Text);
            _insertOffset = Add(_insert, "$offset", SqliteType.Integer);
            _insertId = Add(_insert, "$id", SqliteType.Text);
            _insertTs = Add(_insert, "$ts", SqliteType.Integer);
            _insertSender = Add(_insert, "$sender", SqliteType.Text);
            _insertBody = Add(_insert, "$body", SqliteType.Text);
            _insertClientId = Add(_insert, "$client_id", SqliteType.Text);
            _insertMeta = Add(_insert, "$meta", SqliteType.Text);

            _findByClientId = Create(writer, """
                SELECT "offset", id, ts, sender, body, meta FROM messages
                WHERE topic = $topic AND client_id = $client_id;
                """);
            _findTopic = Add(_findByClientId, "$topic", SqliteType.Text);
            _findClientId = Add(_findByClientId, "$client_id", SqliteType.Text);

            _loadHead = Create(writer, "SELECT head FROM topics WHERE topic = $topic;");
            _loadHeadTopic = Add(_loadHead, "$topic", SqliteType.Text);

            _upsertHead = Create(writer, """
                INSERT INTO topics(topic, head, first_retained, last_trimmed_ts) VALUES($topic, $head, 1, 0)
                ON CONFLICT(topic) DO UPDATE SET head = excluded.head;
                """);
            _upsertTopic = Add(_upsertHead, "$topic", SqliteType.Text);
            _upsertHeadValue = Add(_upsertHead, "$head", SqliteType.Integer);

            _deleteRange = Create(writer, """
                DELETE FROM messages WHERE topic = $topic AND "offset" >= $from AND "offset" < $below
                RETURNING ts;
                """);
            _deleteTopic = Add(_deleteRange, "$topic", SqliteType.Text);
            _deleteFrom = Add(_deleteRange, "$from", SqliteType.Integer);
            _deleteBelow = Add(_deleteRange, "$below", SqliteType.Integer);

            _advanceRetained = Create(writer, """
                UPDATE topics SET first_retained = max(first_retained, $first_retained),
                                  last_trimmed_ts = max(last_trimmed_ts, $trimmed_ts)
                WHERE topic = $topic;
                """);
            _advanceTopic = Add(_advanceRetained, "$topic", SqliteType.Text);
            _advanceFirstRetained = Add(_advanceRetained, "$first_retained", SqliteType.Integer);
            _advanceTrimmedTs = Add(_advanceRetained, "$trimmed_ts", SqliteType.Integer);

            _all = [_insert, _findByClientId, _loadHead, _upsertHead, _deleteRange, _advanceRetained];
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

        public void InsertMessage(AppendRequest request, long offset)
        {
            _insertTopic.Value = request.Topic;
            _insertOffset.Value = offset;
            _insertId.Value = request.Id;
            _insertTs.Value = request.TimestampMs;
            _insertSender.Value = request.From;
            _insertBody.Value = request.Body;
            _insertClientId.Value = (object?)request.ClientId ?? DBNull.Value;
            _insertMeta.Value = (object?)request.MetaJson ?? DBNull.Value;
            _insert.ExecuteNonQuery();
        }

        public StoredMessage? FindByClientId(string topic, string clientId)
        {
            _findTopic.Value = topic;
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

        public long LoadHead(string topic)
        {
            _loadHeadTopic.Value = topic;
            return _loadHead.ExecuteScalar() is long head ? head : 0;
        }

        public void UpsertTopicHead(string topic, long head)
        {
            _upsertTopic.Value = topic;
            _upsertHeadValue.Value = head;
            _upsertHead.ExecuteNonQuery();
        }

        /// <summary>Deletes offsets in [from, below) of one topic and advances its retention bookkeeping.
        /// Returns how many messages were deleted.</summary>
        public long TrimRange(string topic, long from, long below)
        {
            _deleteTopic.Value = topic;
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

            _advanceTopic.Value = topic;
            _advanceFirstRetained.Value = below;
            _advanceTrimmedTs.Value = maxTimestamp;
            _advanceRetained.ExecuteNonQuery();
            return removed;
        }

        public void Dispose()
        {
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
