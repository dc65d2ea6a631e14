using Microsoft.Data.Sqlite;
using Parley.Hub.History;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteHistoryStore
{
    // Every message query selects these columns in this order (see ReadMessagesAsync).
    private const string MessageColumns = "\"offset\", id, ts, sender, body, client_id, meta";

    private const string SelectPositionSql = "SELECT head, first_retained, last_trimmed_ts FROM topics WHERE topic = $topic;";

    private const string ReadRangeSql = $"""
        SELECT {MessageColumns} FROM messages
        WHERE topic = $topic AND "offset" > $a AND "offset" <= $b
        ORDER BY "offset" LIMIT $limit;
        """;

    // The sub-select finds the lowest matching offset from the covering (topic, ts) index, reading only
    // index entries with ts >= sinceMs (without INDEXED BY the planner prefers walking the primary key
    // through every older row). The outer query then walks the primary key from that offset ("+ts"
    // keeps it there), so no row older than the first match is read and nothing is sorted. Correct
    // also when timestamps are not monotonic in offset.
    private const string ReadSinceTimeSql = $"""
        SELECT {MessageColumns} FROM messages
        WHERE topic = $topic AND +ts >= $a AND "offset" <= $b
          AND "offset" >= (SELECT min("offset") FROM messages INDEXED BY messages_topic_ts WHERE topic = $topic AND ts >= $a AND "offset" <= $b)
        ORDER BY "offset" LIMIT $limit;
        """;

    private const string ReadBeforeSql = $"""
        SELECT {MessageColumns} FROM messages
        WHERE topic = $topic AND "offset" < $a
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
        return throughOffset <= 0
            ? new ValueTask<IReadOnlyList<StoredMessage>>([])
            : ReadMessagesAsync(ReadSinceTimeSql, topic, sinceMs, throughOffset, limit, cancellationToken);
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
    private async ValueTask<SqliteConnection> OpenReaderAsync(CancellationToken cancellationToken)
    {
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
