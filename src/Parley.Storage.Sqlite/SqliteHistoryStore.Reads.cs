using Microsoft.Data.Sqlite;
using Parley.Hub.History;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteHistoryStore
{
    // Every message query selects these columns in this order (see ReadMessagesAsync).
    private const string MessageColumns = "\"offset\", id, ts, sender, body, client_id, meta";

    private const string SelectPositionSql = "SELECT head, first_retained, last_trimmed_ts FROM topics WHERE topic = $topic;";

    // The topic's id, looked up once per statement (a topic never changes its id).
    private const string TopicIdSql = "(SELECT topic_id FROM topics WHERE topic = $topic)";

    // Message queries walk the (topic_id, offset) index and fetch each row by seq.
    private const string ReadRangeSql = $"""
        SELECT {MessageColumns} FROM messages
        WHERE topic_id = {TopicIdSql} AND "offset" > $a AND "offset" <= $b
        ORDER BY "offset" LIMIT $limit;
        """;

    // ReadSinceTime in three steps, all in one read transaction (one snapshot): the topic's bounds,
    // a binary search for the first offset whose max_ts reaches sinceMs, then a walk of the offset index
    // from there ("+ts" keeps the planner on it). max_ts never decreases with offset and is at least the
    // row's ts, so every offset before the one found has ts < sinceMs: nothing older than the first
    // match is read, and the result is correct when timestamps are not monotonic in offset.
    private const string SelectBoundsSql = "SELECT topic_id, first_retained, head FROM topics WHERE topic = $topic;";

    private const string SelectMaxTsSql = """SELECT max_ts FROM messages WHERE topic_id = $topic_id AND "offset" = $offset;""";

    private const string ReadFromOffsetSql = $"""
        SELECT {MessageColumns} FROM messages
        WHERE topic_id = $topic_id AND "offset" >= $a AND "offset" <= $b AND +ts >= $since
        ORDER BY "offset" LIMIT $limit;
        """;

    private const string ReadBeforeSql = $"""
        SELECT {MessageColumns} FROM messages
        WHERE topic_id = {TopicIdSql} AND "offset" < $a
        ORDER BY "offset" DESC LIMIT $limit;
        """;

    // Reads list capacity is capped so a huge limit does not pre-allocate a huge list.
    private const int MaxInitialCapacity = 256;

    /// <inheritdoc />
    public async ValueTask<TopicPosition> GetPositionAsync(string topic, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topic);
        ObjectDisposedException.ThrowIf(_disposed, this);

        await using var connection = await OpenReaderAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = SelectPositionSql;
        command.Parameters.AddWithValue("$topic", topic);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return new TopicPosition(Head: 0, _epoch, FirstRetained: 1, LastTrimmedTimestampMs: 0);
        }

        return new TopicPosition(reader.GetInt64(0), _epoch, reader.GetInt64(1), reader.GetInt64(2));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<StoredMessage>> ReadRangeAsync(string topic, long afterOffset, long throughOffset, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topic);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return throughOffset <= afterOffset
            ? new ValueTask<IReadOnlyList<StoredMessage>>([])
            : ReadMessagesAsync(ReadRangeSql, topic, afterOffset, throughOffset, limit, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<StoredMessage>> ReadSinceTimeAsync(string topic, long sinceMs, long throughOffset, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topic);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return throughOffset <= 0 || limit <= 0
            ? new ValueTask<IReadOnlyList<StoredMessage>>([])
            : ReadSinceTimeCoreAsync(topic, sinceMs, throughOffset, limit, cancellationToken);
    }

    private async ValueTask<IReadOnlyList<StoredMessage>> ReadSinceTimeCoreAsync(string topic, long sinceMs, long throughOffset, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken);
        // Deferred: a read transaction, which never takes the write lock. Commands created on the
        // connection from here on are enlisted in it.
        await using var transaction = connection.BeginTransaction(deferred: true);

        long topicId, low, high;
        await using (var bounds = connection.CreateCommand())
        {
            bounds.CommandText = SelectBoundsSql;
            bounds.Parameters.AddWithValue("$topic", topic);
            await using var reader = await bounds.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return [];
            }

            topicId = reader.GetInt64(0);
            low = reader.GetInt64(1);
            high = Math.Min(reader.GetInt64(2), throughOffset);
        }

        if (low > high)
        {
            return [];
        }

        // The first offset in [low, high] with max_ts >= sinceMs, if any (offsets in that range are all
        // stored: retention only removes prefixes and this snapshot holds still).
        await using (var probe = connection.CreateCommand())
        {
            probe.CommandText = SelectMaxTsSql;
            probe.Parameters.AddWithValue("$topic_id", topicId);
            var offsetParameter = probe.Parameters.AddWithValue("$offset", high);
            if (await probe.ExecuteScalarAsync(cancellationToken) is not long maxAtHigh || maxAtHigh < sinceMs)
            {
                return [];
            }

            while (low < high)
            {
                var middle = low + ((high - low) / 2);
                offsetParameter.Value = middle;
                if (await probe.ExecuteScalarAsync(cancellationToken) is long maxTs && maxTs >= sinceMs)
                {
                    high = middle;
                }
                else
                {
                    low = middle + 1;
                }
            }
        }

        await using var command = connection.CreateCommand();
        command.CommandText = ReadFromOffsetSql;
        command.Parameters.AddWithValue("$topic_id", topicId);
        command.Parameters.AddWithValue("$a", low);
        command.Parameters.AddWithValue("$b", throughOffset);
        command.Parameters.AddWithValue("$since", sinceMs);
        command.Parameters.AddWithValue("$limit", limit);
        return await ReadMessagesAsync(command, topic, limit, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<StoredMessage>> ReadBeforeAsync(string topic, long beforeOffset, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topic);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return beforeOffset <= 1
            ? new ValueTask<IReadOnlyList<StoredMessage>>([])
            : ReadMessagesAsync(ReadBeforeSql, topic, beforeOffset, b: 0, limit, cancellationToken);
    }

    // Runs one of the message queries: $topic, $a, $b (ignored by queries that do not use it) and $limit.
    private async ValueTask<IReadOnlyList<StoredMessage>> ReadMessagesAsync(string sql, string topic, long a, long b, int limit, CancellationToken cancellationToken)
    {
        if (limit <= 0)
        {
            return [];
        }

        await using var connection = await OpenReaderAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$topic", topic);
        command.Parameters.AddWithValue("$a", a);
        command.Parameters.AddWithValue("$b", b);
        command.Parameters.AddWithValue("$limit", limit);
        return await ReadMessagesAsync(command, topic, limit, cancellationToken);
    }

    // Reads the rows of a message query (columns as in MessageColumns).
    private static async ValueTask<IReadOnlyList<StoredMessage>> ReadMessagesAsync(SqliteCommand command, string topic, int limit, CancellationToken cancellationToken)
    {
        var messages = new List<StoredMessage>(Math.Min(limit, MaxInitialCapacity));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            messages.Add(new StoredMessage(
                topic,
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetInt64(2),
                reader.GetString(3),
                reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.IsDBNull(6) ? null : reader.GetString(6)));
        }

        return messages;
    }

    // A pooled read-only connection. busy_timeout is per connection and a pooled connection may be
    // fresh, so it is set on every open (a few microseconds).
    // Every read starts here. Microsoft.Data.Sqlite works synchronously, and readers are often called on
    // a socket's I/O thread (see docs/architecture.md), so the read first moves to the thread pool: the
    // caller's thread is never held by disk work.
    private async ValueTask<SqliteConnection> OpenReaderAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        var connection = new SqliteConnection(_readConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = _busyTimeoutPragma;
            await command.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}
