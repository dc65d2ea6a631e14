using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Parley.Hub.Inbox;
using Parley.Identity;

namespace Parley.Server.Identity;

// ASP0016 misreads the inner handler lambdas as request delegates (as in IdentityEndpoints.cs).
#pragma warning disable ASP0016
internal static partial class IdentityEndpoints
{
    // GET /api/messages/<id>: one direct message with its per-recipient states (docs/protocol.md §16). Only
    // its sender, its recipients and hub admins get it (everyone else: 404, so ids reveal nothing); a
    // recipient sees only their own state, the sender and admins every recipient's.
    public static void MapMessages(IEndpointRouteBuilder app, IdentityService identity, IInboxStore inbox)
    {
        app.MapGet("/api/messages/{id}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var id = (string)context.Request.RouteValues["id"]!;
            var found = id.Length <= 64 ? await inbox.StatusAsync(id, context.RequestAborted) : null;
            var isSender = found is { } f && f.Message.From == caller.Name;
            var mine = found?.Recipients.Where(r => r.Recipient == caller.Name).ToList() ?? [];
            if (found is not { } status || (!isSender && !caller.IsAdmin && mine.Count == 0))
            {
                throw new IdentityException(IdentityErrorKind.NotFound, "not_found", "no message with that id that you sent or received");
            }
            var recipients = isSender || caller.IsAdmin ? status.Recipients : mine;
            return (StatusCodes.Status200OK, w => WriteMessage(w, status.Message, recipients));
        }));
    }

    private static void WriteMessage(Utf8JsonWriter w, DirectMessage message, IReadOnlyList<RecipientState> recipients)
    {
        w.WriteString("id", message.Id);
        w.WriteString("from", message.From);
        w.WriteString("to", message.To);
        w.WriteString("message_type", MessageEvent.MessageType);
        w.WriteString("priority", message.Priority);
        if (message.CorrelationId is not null)
        {
            w.WriteString("correlation_id", message.CorrelationId);
        }
        w.WriteNumber("sent_at", message.SentAtMs);
        w.WriteString("body", message.Body);
        w.WriteStartArray("recipients");
        foreach (var r in recipients)
        {
            w.WriteStartObject();
            w.WriteString("name", r.Recipient);
            w.WriteString("state", r.State);
            w.WriteNumber("at", r.StateAtMs);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
