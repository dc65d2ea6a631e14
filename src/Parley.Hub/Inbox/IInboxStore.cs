namespace Parley.Hub.Inbox;

/// <summary>How urgent a direct message is: <c>now</c> reaches even a busy recipient; <c>next</c> (the default) and <c>low</c> wait while they are busy.</summary>
public static class DmPriorities
{
    public const string Now = "now";
    public const string Next = "next";
    public const string Low = "low";

    public static bool IsValid(string priority) => priority is Now or Next or Low;
}

/// <summary>Where a direct message is for one recipient: <c>queued</c> (stored, not yet handed over), <c>delivered</c> (pushed or fetched), <c>read</c> (acked).</summary>
public static class DeliveryStates
{
    public const string Queued = "queued";
    public const string Delivered = "delivered";
    public const string Read = "read";
}

/// <summary>A direct message as sent.</summary>
/// <param name="Id">Unique id (<c>dm-</c> and hex).</param>
/// <param name="From">The sender's name.</param>
/// <param name="To">What the sender addressed, as given (<c>bob</c>, <c>@team</c>, several joined by commas).</param>
/// <param name="Body">The text.</param>
/// <param name="Priority">One of <see cref="DmPriorities"/>.</param>
/// <param name="SentAtMs">When it was stored (Unix ms).</param>
/// <param name="CorrelationId">The sender's correlation id (1-64 characters), carried in message events; null when none was given.</param>
public sealed record DirectMessage(string Id, string From, string To, string Body, string Priority, long SentAtMs, string? CorrelationId = null);

/// <summary>One message in one recipient's inbox.</summary>
/// <param name="Seq">The message's place in the recipient's inbox: 1, 2, 3… in the order stored.</param>
/// <param name="State">One of <see cref="DeliveryStates"/>.</param>
/// <param name="StateAtMs">When the state last changed (Unix ms).</param>
public sealed record InboxItem(string Recipient, long Seq, DirectMessage Message, string State, long StateAtMs);

/// <summary>One recipient's state of a sent message.</summary>
public sealed record RecipientState(string Recipient, string State, long StateAtMs);

/// <summary>
/// Durable per-recipient inboxes (docs/protocol.md §14). <see cref="StoreAsync"/> is atomic and durable
/// before it returns: the message and one queued item per recipient, each at the recipient's next seq.
/// State only moves forward (queued → delivered → read). Specification: <c>InboxStoreSpec</c>.
/// </summary>
public interface IInboxStore : IAsyncDisposable
{
    /// <summary>Stores <paramref name="message"/> for every recipient (distinct names); returns each recipient's item.</summary>
    ValueTask<IReadOnlyList<InboxItem>> StoreAsync(DirectMessage message, IReadOnlyList<string> recipients, CancellationToken cancellationToken = default);

    /// <summary>The recipient's items after <paramref name="afterSeq"/> in one of <paramref name="states"/>, oldest first, at most <paramref name="limit"/>.</summary>
    ValueTask<IReadOnlyList<InboxItem>> ReadAsync(string recipient, long afterSeq, IReadOnlyCollection<string> states, int limit, CancellationToken cancellationToken = default);

    /// <summary>Moves the recipient's items with these seqs to <paramref name="state"/> unless they are already there or beyond; returns how many moved.</summary>
    ValueTask<int> MarkAsync(string recipient, IReadOnlyCollection<long> seqs, string state, long nowMs, CancellationToken cancellationToken = default);

    /// <summary>Marks the recipient's items for these message ids read; returns the items that moved (now read), in the order of the ids.</summary>
    ValueTask<IReadOnlyList<InboxItem>> MarkReadAsync(string recipient, IReadOnlyCollection<string> messageIds, long nowMs, CancellationToken cancellationToken = default);

    /// <summary>A message and every recipient's state of it, or null for an unknown id.</summary>
    ValueTask<(DirectMessage Message, IReadOnlyList<RecipientState> Recipients)?> StatusAsync(string messageId, CancellationToken cancellationToken = default);
}
